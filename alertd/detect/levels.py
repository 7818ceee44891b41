"""The last level event of every subject (balances, positions, stream states), stored.

Reminders check their rule against it, and a rule a reload adds is checked against it at
once. Kept in the state file, in the transaction of the frame that raised it, so a rollback
or a restart cannot leave it saying what the file does not (an in-memory copy did both, and
never held stream states, so a reload that added a stream rule missed an account down).
"""

from __future__ import annotations

import json

from alertd.domain.events import Event, plain_fields, typed_fields
from alertd.storage.store import Store


class Levels:
    """The values a level's next frame is compared with, per subject (a balance's free,
    total and locked; a position's size, entry and side; points and league; a stream's
    status): three text columns whose meaning is the kind's."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def get(self, subject: str) -> tuple[str | None, str | None, str | None] | None:
        row = self.store.db.execute("SELECT a, b, c FROM levels WHERE subject=?",
                                    (subject,)).fetchone()
        return None if row is None else (row[0], row[1], row[2])

    def put(self, subject: str, a: object, b: object = None, c: object = None) -> None:
        self.store.db.execute("INSERT OR REPLACE INTO levels VALUES (?, ?, ?, ?, ?)",
                              (subject, *(None if v is None else str(v) for v in (a, b, c)),
                               self.store.clock()))


class LastLevels:
    def __init__(self, store: Store) -> None:
        self.store = store

    def put(self, event: Event) -> None:
        """Call inside the transaction of the frame that raised `event`."""
        self.store.db.execute("INSERT OR REPLACE INTO last_levels VALUES (?, ?, ?, ?)", (
            event.subject, event.kind, json.dumps(plain_fields(event.fields)),
            self.store.clock()))

    def get(self, subject: str) -> Event | None:
        row = self.store.db.execute("SELECT kind, fields FROM last_levels WHERE subject=?",
                                    (subject,)).fetchone()
        return None if row is None else self._event(subject, row[0], row[1])

    def all(self) -> list[Event]:
        rows = self.store.db.execute("SELECT subject, kind, fields FROM last_levels "
                                     "ORDER BY subject").fetchall()
        return [self._event(*row) for row in rows]

    @staticmethod
    def _event(subject: str, kind: str, text: str) -> Event:
        return Event(kind, subject, typed_fields(kind, json.loads(text)), changed=False)
