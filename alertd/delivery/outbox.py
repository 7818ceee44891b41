"""The outbox: alerts waiting to be sent, one row per alert and notifier URL.

Rows are written in the pipeline's transaction and only marked delivered after the notifier
said so, which makes delivery at-least-once across crashes and restarts. An alert that meets
quiet hours (its rule's or its notifier's) is written `held` until they end, then sent in a
digest with the others held with it; rows sent inside a digest are marked `folded`.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from alertd.domain.alerts import Alert
from alertd.domain.quiet import Quiet
from alertd.storage.store import Store

UNSURE = "outcome unknown"
"""How `last_error` begins when a try may have been delivered (see notify.OutcomeUnknown)."""
LONGEST_WAIT = 900.0
"""No retry is set further ahead than this (the longest: 10 min after an unsure try)."""


@dataclass(frozen=True, slots=True)
class Delivery:
    """One alert for one notifier, as stored."""

    id: int
    notifier: str
    rule: str
    severity: str
    title: str
    body: str
    attempts: int
    created: float
    target: str = ""
    """Which of the notifier's URLs (its digest); empty: all of them."""
    held: bool = False
    """Held by quiet hours: sent in one digest with the others held with it."""
    unsure: bool = False
    """The last try reached the service but got no answer: it may have been delivered."""


class Outbox:
    """The outbox seen from one thread: the core adds rows in its transactions; a delivery
    worker passes `own=True` to read on a connection of its own, and `via` (the core's
    `call`) to have its marks written by the core thread, which owns every write: a worker
    writing itself would wait on the core's open transaction, with SQLite's busy backoff,
    for as long as frames keep coming."""

    def __init__(self, store: Store, own: bool = False,
                 via: Callable[..., Any] | None = None) -> None:
        self.store = store
        self._db = store.connect() if own else None
        self._via = via
        self.targets: Mapping[str, tuple[str, ...]] = {}
        """Each notifier's URL targets: an alert gets a row per target, retried alone."""
        self.quiet: Mapping[str, Quiet] = {}
        """Each notifier's quiet hours, if it has them."""

    def add(self, alert: Alert, quiet: Quiet | None = None) -> None:
        """Queue an alert for each of its notifiers, held while `quiet` (its rule's) or the
        notifier's quiet hours hold, unless it is a failure; call inside a transaction."""
        now = self.store.clock()
        for name in alert.notify:
            hold = None
            if alert.severity != "failure":
                ends = [q.until(now) for q in (quiet, self.quiet.get(name)) if q is not None]
                hold = max((e for e in ends if e is not None), default=None)
            for target in self.targets.get(name) or ("",):
                cur = self.store.db.execute(
                    "INSERT INTO outbox (created, notifier, rule, kind, account, severity, title, "
                    "body, next_at, target, held) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (now, name, alert.rule, alert.kind, alert.account, alert.severity,
                     alert.title, alert.body, hold or now, target, int(hold is not None)))
                self.store.note_alert(cur.lastrowid or 0, name)

    def _read(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        if self._db is not None:
            return self._db.execute(sql, args).fetchall()
        with self.store.lock:
            return self.store.db.execute(sql, args).fetchall()

    def _write(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        """Written and committed before it returns, so this worker's next read sees it."""
        if self._via is not None:
            self._via(self._commit, sql, rows)
        else:
            self._commit(sql, rows)

    def _commit(self, sql: str, rows: list[tuple[object, ...]]) -> None:
        with self.store.transaction():
            self.store.db.executemany(sql, rows)

    def due(self, notifier: str, limit: int = 500) -> list[Delivery]:
        """Pending deliveries whose time has come, failures first (a stream down must not wait
        behind a storm of fills), then oldest first; only those on disk. Times are
        wall clock (they outlive the process), so a retry set further ahead than any delay we
        set (quiet hours: a day) can only come from the clock stepping back, and is due
        now."""
        rows = self._read(
            "SELECT id, notifier, rule, severity, title, body, attempts, created, target, held, "
            f"last_error LIKE '{UNSURE}%' FROM outbox WHERE notifier=? AND status='pending' "
            "AND (next_at<=? OR next_at>? + CASE WHEN held<>0 THEN 86400 ELSE ? END) AND id<=? "
            "ORDER BY severity='failure' DESC, id LIMIT ?",
            (notifier, now := self.store.clock(), now, LONGEST_WAIT, self.store.visible_id,
             limit))
        return [Delivery(*row[:-2], held=bool(row[-2]),  # type: ignore[arg-type]
                         unsure=bool(row[-1])) for row in rows]

    def next_due(self, notifier: str) -> float | None:
        rows = self._read(
            "SELECT MIN(next_at) FROM outbox WHERE notifier=? AND status='pending' AND id<=?",
            (notifier, self.store.visible_id))
        return rows[0][0]  # type: ignore[return-value]

    def delivered(self, ids: int | Sequence[int]) -> None:
        """Sent: alone, or as a digest whose first row counts as the message and the others
        as `folded` into it (the rate window counts messages, not alerts)."""
        ids = _ids(ids)
        now = self.store.clock()
        self._write("UPDATE outbox SET status=?, attempts=attempts+1, done_at=?, "
                    "last_error=NULL WHERE id=?",
                    [("delivered" if i == 0 else "folded", now, n) for i, n in enumerate(ids)])

    def retry_later(self, ids: int | Sequence[int], error: str, next_at: float) -> None:
        self._write("UPDATE outbox SET attempts=attempts+1, next_at=?, last_error=? WHERE id=?",
                    [(next_at, error[:500], n) for n in _ids(ids)])

    def dead(self, ids: int | Sequence[int], error: str) -> None:
        now = self.store.clock()
        self._write("UPDATE outbox SET status='dead', attempts=attempts+1, done_at=?, "
                    "last_error=? WHERE id=?", [(now, error[:500], n) for n in _ids(ids)])

    def sent_since(self, notifier: str, since: float) -> list[tuple[str, float]]:
        """(target, time) of the messages sent since `since`, to resume rate windows."""
        rows = self._read("SELECT target, done_at FROM outbox WHERE notifier=? AND "
                          "status='delivered' AND done_at>=?", (notifier, since))
        return [(str(t), float(d)) for t, d in rows]  # type: ignore[arg-type]

    def prune(self, before: float) -> int:
        """Forget what was sent, folded or given up on before `before`; call inside a
        transaction (pending rows are kept however old)."""
        return self.store.db.execute("DELETE FROM outbox WHERE status != 'pending' AND "
                                     "done_at < ?", (before,)).rowcount

    def counts(self) -> dict[str, dict[str, int]]:
        """Per notifier: how many alerts are pending, delivered and dead."""
        if self._db is not None:
            return counts(self._db)
        with self.store.lock:
            return counts(self.store.db)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


def _ids(ids: int | Sequence[int]) -> list[int]:
    return [ids] if isinstance(ids, int) else list(ids)


def pending(db: sqlite3.Connection) -> dict[str, tuple[int, float]]:
    """Rows waiting per notifier, with when the oldest was raised, from any connection
    (metrics and `alertd status --check` read it beside the core's writes)."""
    rows = db.execute("SELECT notifier, COUNT(*), MIN(created) FROM outbox "
                      "WHERE status='pending' GROUP BY notifier").fetchall()
    return {notifier: (n, oldest) for notifier, n, oldest in rows}


def counts(db: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Outbox counts per notifier and status, from any connection (`alertd status` reads)."""
    rows = db.execute("SELECT notifier, status, COUNT(*) FROM outbox "
                      "GROUP BY notifier, status ORDER BY notifier").fetchall()
    out: dict[str, dict[str, int]] = {}
    for notifier, status, n in rows:
        out.setdefault(notifier, {"pending": 0, "delivered": 0, "folded": 0, "dead": 0})[
            status] = n
    return out
