"""Silences: an operator's "not now" for a rule's alerts, kept in the state file, always with
an end.

`alertd silence add` writes a row from another process; the running alertd notices at the next
alert it raises (SQLite's `data_version` says another connection wrote, so the check is one
PRAGMA) and on its one-second timer. An alert a silence matches is counted on it, logged, and
never queued. A level's firing that a silence held is remembered per rule and subject
(`silenced_levels`): its resolved notice and reminders are held with it, and if the level
still holds when the silence ends, the firing is said then, once. The shaping stage owns the
`silences` and `silenced_levels` tables.
"""

from __future__ import annotations

import json
import logging
import math
import sqlite3
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from alertd.domain.alerts import Alert
from alertd.storage.store import Store

log = logging.getLogger("alertd")
OWN_RULE = "alertd"
"""The rule name of alertd's own notices (a failed reload, an alert given up on): never
silenced, so a silence cannot hide that alertd itself is in trouble."""
LONGEST = 90 * 86400.0
"""The longest a silence may last: every silence ends, and a forgotten one ends in a season."""
_COLUMNS = "id, rule, account, matchers, created, expires, comment, silenced"


@dataclass(frozen=True, slots=True)
class Silence:
    """One silence as stored: a rule, optionally an account and event fields that must equal
    the given text (compared the way rules compare: text case-insensitively, numbers as
    exact decimals), and when it ends."""

    id: int
    rule: str
    account: str | None
    matchers: tuple[tuple[str, str], ...]
    created: float
    expires: float
    comment: str = ""
    silenced: int = 0
    """How many alerts it kept from being sent."""

    def matches(self, alert: Alert, fields: Mapping[str, Any] | None) -> bool:
        if alert.rule != self.rule or alert.rule == OWN_RULE:
            return False
        if self.account is not None and alert.account != self.account:
            return False
        return all(equal((fields or {}).get(name), value) for name, value in self.matchers)

    def describe(self) -> str:
        """`rule big-fill, account main, symbol=ADAUSDM`, for the CLI and the log."""
        parts = [f"rule {self.rule}"] + ([f"account {self.account}"] if self.account else [])
        return ", ".join(parts + [f"{k}={v}" for k, v in self.matchers])


def equal(have: Any, want: str) -> bool:
    """An event's value against a matcher's text; a value the event lacks never matches."""
    if have is None:
        return False
    if isinstance(have, bool):
        return want.casefold() in (("yes", "true") if have else ("no", "false"))
    if isinstance(have, Decimal):
        try:
            return have == Decimal(want)
        except ArithmeticError:
            return False
    return str(have).casefold() == want.casefold()


def _row(row: Sequence[Any]) -> Silence:
    matchers = tuple((str(k), str(v)) for k, v in json.loads(row[3]))
    return Silence(row[0], row[1], row[2], matchers, row[4], row[5], row[6], row[7])


def _has_table(db: sqlite3.Connection) -> bool:
    """A state file of an alertd before silences has none (status reads such files)."""
    return db.execute("SELECT 1 FROM sqlite_master WHERE name='silences'").fetchone() is not None


def add(db: sqlite3.Connection, rule: str, account: str | None,
        matchers: Sequence[tuple[str, str]], seconds: float, comment: str, now: float) -> Silence:
    """Store a new silence lasting `seconds` (at most LONGEST) from `now`; committed here."""
    if not 0 < seconds <= LONGEST:
        raise ValueError(f"a silence lasts more than 0 s and at most {LONGEST:.0f} s")
    with db:
        cur = db.execute(
            "INSERT INTO silences (rule, account, matchers, created, expires, comment) "
            "VALUES (?, ?, ?, ?, ?, ?)",
            (rule, account, json.dumps([list(m) for m in matchers]), now, now + seconds,
             comment))
    return Silence(cur.lastrowid or 0, rule, account, tuple(matchers), now, now + seconds,
                   comment)


def active(db: sqlite3.Connection, now: float) -> list[Silence]:
    """The silences in force at `now`, oldest first (one query on the `expires` index)."""
    if not _has_table(db):
        return []
    return [_row(r) for r in db.execute(
        f"SELECT {_COLUMNS} FROM silences WHERE expires > ? ORDER BY id", (now,))]


def every(db: sqlite3.Connection) -> list[Silence]:
    """All silences the state file keeps (ended ones for 30 days), oldest first."""
    if not _has_table(db):
        return []
    return [_row(r) for r in db.execute(f"SELECT {_COLUMNS} FROM silences ORDER BY id")]


def expire(db: sqlite3.Connection, silence_id: int, now: float) -> Silence | None:
    """End a silence now (one already ended keeps its end); the silence as it was, or None
    if there is none by that id. Committed here."""
    with db:
        row = db.execute(f"SELECT {_COLUMNS} FROM silences WHERE id=?",
                         (silence_id,)).fetchone()
        if row is not None:
            db.execute("UPDATE silences SET expires=? WHERE id=? AND expires > ?",
                       (now, silence_id, now))
    return None if row is None else _row(row)


class Silences:
    """The silences as the pipeline applies them: the active ones in memory, read again only
    when another connection wrote the file or one of them ended; counts and the remembered
    level firings are written in the transaction of the alert they held, and its log line
    waits for that transaction's commit (a store Participant)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.active: tuple[Silence, ...] = ()
        self._version: int | None = None
        self._until = math.inf
        """The earliest end among `active`: from then on they are read again."""
        self._lines: list[str] = []
        self._mark = 0
        self._holding: bool | None = None
        """Whether `silenced_levels` may have rows (None: not asked yet). Only this class
        writes them, so until one is remembered no level firing asks the file about them."""
        store.participants.append(self)

    def _may_hold(self) -> bool:
        if self._holding is None:
            self._holding = bool(self.store.db.execute(
                "SELECT EXISTS (SELECT 1 FROM silenced_levels)").fetchone()[0])
        return self._holding

    def note(self, line: str) -> None:
        """A held alert's log line, written once its transaction commits: a line is a promise."""
        self._lines.append(line)

    def began(self) -> None:
        self._mark = len(self._lines)

    def released(self) -> None:
        pass

    def rolled_back(self) -> None:
        del self._lines[self._mark:]

    def before_commit(self) -> None:
        pass

    def committed(self) -> None:
        lines, self._lines = self._lines, []
        for line in lines:
            log.info("%s", line)

    def abandoned(self) -> None:
        self._lines.clear()
        self._holding = None

    def refresh(self, now: float) -> None:
        """Read the active silences again if the file changed under us (an `alertd silence`
        command committed) or one has ended; one PRAGMA otherwise."""
        version = self.store.db.execute("PRAGMA data_version").fetchone()[0]
        if version == self._version and now < self._until:
            return
        self._version = version
        self.active = tuple(active(self.store.db, now))
        self._until = min((s.expires for s in self.active), default=math.inf)

    def match(self, alert: Alert, fields: Mapping[str, Any] | None,
              now: float) -> Silence | None:
        """The first silence in force that holds this alert, if any."""
        if alert.rule == OWN_RULE:
            return None
        self.refresh(now)
        return next((s for s in self.active if s.matches(alert, fields)), None)

    def count(self, silence_id: int) -> None:
        """One more alert held; call inside the transaction that would have queued it."""
        self.store.db.execute("UPDATE silences SET silenced = silenced + 1 WHERE id=?",
                              (silence_id,))

    def remember(self, silence_id: int, rule: str, rule_key: str, subject: str) -> None:
        """A level rule's firing was held: its notices follow it, and its end is checked."""
        self._holding = True
        self.store.db.execute("INSERT OR REPLACE INTO silenced_levels VALUES (?, ?, ?, ?)",
                              (rule_key, subject, rule, silence_id))

    def held(self, rule_key: str, subject: str) -> int | None:
        """The silence that held this level's firing, if one did and it is not yet said."""
        if not self._may_hold():
            return None
        row = self.store.db.execute(
            "SELECT silence FROM silenced_levels WHERE rule_key=? AND subject=?",
            (rule_key, subject)).fetchone()
        return None if row is None else int(row[0])

    def forget(self, rule_key: str, subject: str) -> None:
        if not self._may_hold():
            return
        self.store.db.execute("DELETE FROM silenced_levels WHERE rule_key=? AND subject=?",
                              (rule_key, subject))

    def ended(self, now: float) -> list[tuple[int, str, str, str]]:
        """Held level firings whose silence has ended: (silence, rule, rule key, subject)."""
        if not self._may_hold():
            return []
        return [tuple(r) for r in self.store.db.execute(  # type: ignore[misc]
            "SELECT l.silence, l.rule, l.rule_key, l.subject FROM silenced_levels l "
            "JOIN silences s ON s.id = l.silence WHERE s.expires <= ? "
            "ORDER BY l.silence, l.rule, l.subject", (now,))]

    def prune(self, before: float) -> int:
        """Forget silences that ended before `before` (kept a while for `silence list`)."""
        return self.store.db.execute(
            "DELETE FROM silences WHERE expires < ? AND id NOT IN "
            "(SELECT silence FROM silenced_levels)", (before,)).rowcount
