"""When each stream was first watched: a fact stored in the state file, not inferred.

Whether a snapshot or a catch-up is a first look (history, recorded quietly) or news after a
gap used to be guessed from whether the stream had order or fill rows; housekeeping empties
an idle account's rows, and a first catch-up that failed left none, so a gap's fills were
then taken for history. The row is written in the transaction of the first thing the stream
shows, and the memory of it follows that transaction (a rollback forgets it again).
"""

from __future__ import annotations

from alertd.storage.store import Store


class Watched:
    """`since(source)`: when the stream was first watched, or None if it never was."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._known: dict[str, float] = {}
        self._savepoint: dict[str, float] = {}
        self._uncommitted: dict[str, float] = {}
        store.participants.append(self)

    def since(self, source: str) -> float | None:
        for memory in (self._known, self._uncommitted, self._savepoint):
            if source in memory:
                return memory[source]
        row = self.store.db.execute("SELECT watched_since FROM streams WHERE source=?",
                                    (source,)).fetchone()
        if row is not None:
            self._known[source] = float(row[0])
            return float(row[0])
        return None

    def mark(self, source: str, when: float) -> None:
        """Record the first look at `source` (call inside a transaction); later marks keep
        the first time."""
        if self.since(source) is None:
            self.store.db.execute("INSERT OR IGNORE INTO streams VALUES (?, ?)", (source, when))
            self._savepoint[source] = when

    def began(self) -> None:
        pass

    def before_commit(self) -> None:
        pass

    def released(self) -> None:
        self._uncommitted.update(self._savepoint)
        self._savepoint.clear()

    def rolled_back(self) -> None:
        self._savepoint.clear()

    def committed(self) -> None:
        self._known.update(self._uncommitted)
        self._uncommitted.clear()

    def abandoned(self) -> None:
        self._savepoint.clear()
        self._uncommitted.clear()
