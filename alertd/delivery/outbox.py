"""The outbox: alerts waiting to be sent, one row per alert and notifier.

Rows are written in the pipeline's transaction and only marked delivered after the notifier
said so, which makes delivery at-least-once across crashes and restarts.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from alertd.store import Store

LONGEST_WAIT = 600.0
"""No retry is set further ahead than this (the longest backoff is 5 min +50 % jitter)."""


@dataclass(frozen=True, slots=True)
class Alert:
    """A rendered alert, before it is fanned out to its notifiers."""

    rule: str
    kind: str
    account: str
    severity: str
    title: str
    body: str
    notify: tuple[str, ...]
    fields: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    """The event behind a rule's alert, for grouping; None for notices and alertd's own."""


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

    def add(self, alert: Alert) -> None:
        """Queue an alert for each of its notifiers; call inside the caller's transaction."""
        now = self.store.clock()
        for name in alert.notify:
            for target in self.targets.get(name) or ("",):
                cur = self.store.db.execute(
                    "INSERT INTO outbox (created, notifier, rule, kind, account, severity, title, "
                    "body, next_at, target) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (now, name, alert.rule, alert.kind, alert.account, alert.severity,
                     alert.title, alert.body, now, target))
                self.store.note_alert(cur.lastrowid or 0, name)

    def _read(self, sql: str, args: tuple[object, ...]) -> list[tuple[object, ...]]:
        if self._db is not None:
            return self._db.execute(sql, args).fetchall()
        with self.store.lock:
            return self.store.db.execute(sql, args).fetchall()

    def _write(self, sql: str, args: tuple[object, ...]) -> None:
        """Written and committed before it returns, so this worker's next read sees it."""
        if self._via is not None:
            self._via(self._commit, sql, args)
        else:
            self._commit(sql, args)

    def _commit(self, sql: str, args: tuple[object, ...]) -> None:
        with self.store.transaction():
            self.store.db.execute(sql, args)

    def due(self, notifier: str, limit: int = 20) -> list[Delivery]:
        """Pending deliveries whose time has come, oldest first; only those on disk. Times are
        wall clock (they outlive the process), so a retry set further ahead than any delay we
        set can only come from the clock stepping back, and is due now."""
        rows = self._read(
            "SELECT id, notifier, rule, severity, title, body, attempts, created, target "
            "FROM outbox WHERE notifier=? AND status='pending' AND (next_at<=? OR next_at>?) "
            "AND id<=? ORDER BY id LIMIT ?",
            (notifier, now := self.store.clock(), now + LONGEST_WAIT, self.store.visible_id,
             limit))
        return [Delivery(*row) for row in rows]  # type: ignore[arg-type]

    def next_due(self, notifier: str) -> float | None:
        rows = self._read(
            "SELECT MIN(next_at) FROM outbox WHERE notifier=? AND status='pending' AND id<=?",
            (notifier, self.store.visible_id))
        return rows[0][0]  # type: ignore[return-value]

    def delivered(self, delivery_id: int) -> None:
        self._write("UPDATE outbox SET status='delivered', attempts=attempts+1, done_at=?, "
                    "last_error=NULL WHERE id=?", (self.store.clock(), delivery_id))

    def retry_later(self, delivery_id: int, error: str, next_at: float) -> None:
        self._write("UPDATE outbox SET attempts=attempts+1, next_at=?, last_error=? WHERE id=?",
                    (next_at, error[:500], delivery_id))

    def dead(self, delivery_id: int, error: str) -> None:
        self._write("UPDATE outbox SET status='dead', attempts=attempts+1, done_at=?, "
                    "last_error=? WHERE id=?", (self.store.clock(), error[:500], delivery_id))

    def counts(self) -> dict[str, dict[str, int]]:
        """Per notifier: how many alerts are pending, delivered and dead."""
        if self._db is not None:
            return counts(self._db)
        with self.store.lock:
            return counts(self.store.db)

    def close(self) -> None:
        if self._db is not None:
            self._db.close()


def counts(db: sqlite3.Connection) -> dict[str, dict[str, int]]:
    """Outbox counts per notifier and status, from any connection (`alertd status` reads)."""
    rows = db.execute("SELECT notifier, status, COUNT(*) FROM outbox "
                      "GROUP BY notifier, status ORDER BY notifier").fetchall()
    out: dict[str, dict[str, int]] = {}
    for notifier, status, n in rows:
        out.setdefault(notifier, {"pending": 0, "delivered": 0, "dead": 0})[status] = n
    return out
