"""SQLite state: what detection remembers and the outbox, in one file and one transaction.

A frame's state changes and the alerts they cause commit together, so a crash can never
record a fill as seen without its alert being queued, nor queue an alert twice. Commits are
grouped: alert-less state within GROUP_COMMIT, alerts within ALERT_COMMIT, and a commit that
holds alerts is forced to disk before any worker may read them (`visible_id`).
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol, cast

from alertd.storage.engine import connect_postgres, open_postgres
from alertd.storage.location import StateURL, is_postgres
from alertd.storage.lockfile import StateLocked, lock_holder, lock_state
from alertd.storage.schema import migrate

__all__ = ["StateLocked", "StateWriteError", "Store", "lock_holder", "write_failure"]

GROUP_COMMIT = 0.05
ALERT_COMMIT = 0.005
FORGET_AFTER = 30 * 86400.0
"""How long the state keeps what is done (finished orders and their fills, sent alerts, the
fill log); older fills are never news."""



WRITE_FAILURES = {8: "read-only", 10: "I/O error", 13: "full", 14: "cannot be opened"}
"""SQLite's primary result codes that mean the file cannot take writes now, not a bug."""


class StateWriteError(Exception):
    """The state file cannot be written now (disk full, read-only, I/O error). Nothing of the
    open transaction is kept: the core holds its frames and replays them once it can write."""


def write_failure(exc: BaseException) -> bool:
    if isinstance(exc, StateWriteError):
        return True
    code = getattr(exc, "sqlite_errorcode", 0) if isinstance(exc, sqlite3.Error) else 0
    return (code & 0xFF) in WRITE_FAILURES


class Participant(Protocol):
    """A stage's state over this file that keeps something in memory: told when one use of
    the transaction (a savepoint) is kept or rolled back, when the transaction commits, and
    when all of it is dropped, so its memory never says what the file does not."""

    def began(self) -> None: ...
    def released(self) -> None: ...
    def rolled_back(self) -> None: ...
    def before_commit(self) -> None: ...
    def committed(self) -> None: ...
    def abandoned(self) -> None: ...




class Store:
    """One SQLite connection shared by the pipeline and delivery threads under one lock."""

    def __init__(self, path: Path | str | StateURL, clock: Callable[[], float] = time.time, *,
                 exclusive: bool = False, connection: object | None = None) -> None:
        """`path` may be a PostgreSQL StateURL (storage/engine.py): then `connection` may be
        the session to use (the leader's), there is no file to lock, fsync or watch, and a
        commit is durable when it returns (synchronous_commit)."""
        self._lock_fd: int | None = None
        self.postgres = is_postgres(path)
        if str(path) != ":memory:" and not self.postgres:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            if exclusive:
                self._lock_fd = lock_state(Path(path))
        self.path = path
        self.clock = clock
        self.lock = threading.RLock()
        if self.postgres:
            self.db = open_postgres(path, connection)  # type: ignore[arg-type]
        else:
            self.db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                                      timeout=30)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=NORMAL")
            migrate(self.db)
        self.raw = self.db
        """The connection itself, for the store's own BEGIN, SAVEPOINT and COMMIT."""
        self.db = cast(sqlite3.Connection, Guarded(self.raw, self._first_write))
        """What the stages read and write through: a frame's savepoint opens at its first
        write, so a frame that changes only memory (most) costs no SQL for it."""
        self._savepoint = False
        self._depth = 0
        self._open_since: float | None = None
        self._wal = None if str(path) == ":memory:" or self.postgres else f"{path}-wal"
        self.visible_id: int = self.db.execute(
            "SELECT COALESCE(MAX(id), 0) FROM outbox").fetchone()[0]
        self._alert_id = 0
        self._alert_since: float | None = None
        self._alert_notify: set[str] = set()
        self.on_commit: Callable[[set[str]], None] | None = None
        self.on_abandon: Callable[[], None] | None = None
        self.participants: list[Participant] = []
        self._inode = self._identity()

    def close(self) -> None:
        with self.lock:
            try:
                self.flush()
            finally:
                self.db.close()
                if self._lock_fd is not None:
                    os.close(self._lock_fd)
                    self._lock_fd = None

    def _identity(self) -> tuple[int, int] | None:
        if str(self.path) == ":memory:" or self.postgres:
            return None
        st = os.stat(self.path)
        return st.st_dev, st.st_ino

    def file_problem(self) -> str | None:
        """Why the path no longer leads to the file we write, if it does not: deleted or
        replaced under us, every later write would go where no restart finds it."""
        if self._inode is None:
            return None
        try:
            now = self._identity()
        except FileNotFoundError:
            return f"the state file {self.path} was deleted while alertd was using it"
        except OSError as exc:
            return f"the state file {self.path} cannot be checked: {exc.strerror}"
        if now != self._inode:
            return f"the state file {self.path} was replaced by another file"
        return None

    def close_and_restore(self) -> None:
        """Close, after writing what the open (deleted) file holds back to its path: a copy
        first, then the stale `-wal`/`-shm` removed (their pages would be replayed onto the
        copy), then the copy renamed into place. Only the holder of the lock may do this."""
        with self.lock:
            path = Path(self.path)
            copy = path.with_name(path.name + ".restoring")
            self.flush()
            target = sqlite3.connect(str(copy))
            try:
                self.db.backup(target)
            finally:
                target.close()
            self.close()
            for stale in (f"{path}-wal", f"{path}-shm"):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(stale)
            os.replace(copy, path)

    def abandon(self) -> None:
        """Drop the open transaction whole and every cache that may hold its writes (SQLite
        may already have rolled it back on a full disk); the frames are replayed later."""
        with self.lock:
            with contextlib.suppress(sqlite3.Error):
                if self.raw.in_transaction:
                    self.raw.execute("ROLLBACK")
            self._open_since, self._depth = None, 0
            self._alert_id, self._alert_since, self._alert_notify = 0, None, set()
            for part in self.participants:
                part.abandoned()
            if self.on_abandon is not None:
                self.on_abandon()

    def probe(self) -> None:
        """A real write and commit, to learn whether the file takes writes again."""
        with self.transaction():
            self.db.execute("INSERT OR REPLACE INTO meta VALUES ('probe', ?)", (str(time.time()),))

    def connect(self) -> sqlite3.Connection:
        """Another connection to the same file, for a thread that must not share this one
        (a delivery worker); it sees only what was committed."""
        if self.postgres:
            return connect_postgres(self.path)  # type: ignore[arg-type]
        db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False,
                             timeout=30)
        db.execute("PRAGMA synchronous=NORMAL")
        return db

    @contextmanager
    def transaction(self, defer: bool = False) -> Iterator[None]:
        """Writes inside commit together, each top-level use in a savepoint of its own.

        With `defer`, the commit may wait (GROUP_COMMIT, or ALERT_COMMIT once an alert is in
        it) so that following frames share it. An error rolls back to the savepoint: what
        this use wrote, in the file and in the caches, and nothing of the frames before it.
        """
        with self.lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            if self._open_since is None:
                self.raw.execute("BEGIN IMMEDIATE")
                self._open_since = time.monotonic()
            for part in self.participants:
                part.began()
            self._savepoint = False
            marks = (self._alert_id, self._alert_since, set(self._alert_notify))
            self._depth = 1
            if self.postgres:  # there a failed read aborts the whole transaction: undo to here
                self._first_write()
            try:
                yield
            except BaseException as exc:
                self._depth = 0
                if write_failure(exc) or not self.raw.in_transaction:
                    self.abandon()
                    if write_failure(exc):
                        raise StateWriteError(str(exc)) from None
                    raise
                self._roll_back_one(marks)
                raise
            self._depth = 0
            if self._savepoint:
                self._savepoint = False
                self.raw.execute("RELEASE one")
            for part in self.participants:
                part.released()
            if not defer or self.flush_due_in() == 0.0:
                self.flush()

    def _roll_back_one(self, marks: tuple[int, float | None, set[str]]) -> None:
        try:
            if self._savepoint:
                self._savepoint = False
                self.raw.execute("ROLLBACK TO one")
                self.raw.execute("RELEASE one")
        finally:
            self._alert_id, self._alert_since, self._alert_notify = marks
            for part in self.participants:
                part.rolled_back()

    def _first_write(self) -> None:
        """A use of the transaction writes for the first time: open its savepoint now."""
        if self._depth and not self._savepoint:
            self.raw.execute("SAVEPOINT one")
            self._savepoint = True

    def note_alert(self, row_id: int, notifier: str) -> None:
        """An outbox row was written in the open transaction; it becomes visible at commit."""
        self._alert_id = max(self._alert_id, row_id)
        self._alert_notify.add(notifier)
        if self._alert_since is None:
            self._alert_since = time.monotonic()

    def alerts_pending(self) -> bool:
        """Whether the open transaction holds alerts no worker can see until it commits."""
        return self._alert_since is not None

    def flush_due_in(self) -> float | None:
        """Seconds until the open transaction should be committed (None: nothing open)."""
        if self._open_since is None:
            return None
        now = time.monotonic()
        due = self._open_since + GROUP_COMMIT
        if self._alert_since is not None:
            due = min(due, self._alert_since + ALERT_COMMIT)
        return max(0.0, due - now)

    def flush(self) -> None:
        """Commit what deferred transactions wrote; cheap when nothing is pending.

        A commit holding alerts is also forced to disk (as synchronous=FULL would, which
        SQLite will not switch to inside a transaction), so not even a power cut loses one;
        only then do the alerts become visible to the delivery workers, who are told.
        """
        with self.lock:
            if self._open_since is None or self._depth != 0:
                return
            try:
                for part in self.participants:
                    part.before_commit()
                self.raw.execute("COMMIT")
            except sqlite3.Error as exc:
                self.abandon()
                raise StateWriteError(str(exc)) from None
            self._open_since = None
            for part in self.participants:
                part.committed()
            if self._alert_since is None:
                return
            if self._wal is not None:
                self._sync_wal()
            self.visible_id = max(self.visible_id, self._alert_id)
            notify, self._alert_notify = self._alert_notify, set()
            self._alert_id, self._alert_since = 0, None
            if self.on_commit is not None:
                self.on_commit(notify)

    def _sync_wal(self) -> None:
        try:
            fd = os.open(self._wal, os.O_RDONLY)
        except OSError:
            return
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")


class Guarded:
    """A connection that calls `on_write` before any statement that changes rows (the
    Store opens the frame's savepoint there); everything else is the connection's own."""

    __slots__ = ("_db", "_on_write")

    def __init__(self, db: Any, on_write: Callable[[], None]) -> None:
        self._db, self._on_write = db, on_write

    def execute(self, sql: str, args: Any = ()) -> Any:
        if sql.lstrip()[:7].upper().startswith(WRITES):
            self._on_write()
        return self._db.execute(sql, args)

    def executemany(self, sql: str, rows: Any) -> Any:
        if sql.lstrip()[:7].upper().startswith(WRITES):
            self._on_write()
        return self._db.executemany(sql, rows)

    def executescript(self, sql: str) -> Any:
        self._on_write()
        return self._db.executescript(sql)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._db, name)
