"""The PostgreSQL adapter: the part of sqlite3's Connection the stages use, over psycopg 3.

The stages write SQLite's SQL (`?`, `INSERT OR REPLACE`, `lastrowid`); each statement is
translated once (cached by its text), so they run unchanged on either engine. The connection
is in autocommit mode, so the BEGIN/SAVEPOINT/RELEASE/COMMIT the Store issues mean what they
mean on SQLite. psycopg's errors are raised as sqlite3's classes (what the stages catch), and
those that mean "cannot write now" (the session lost, disk full, read only) carry the SQLite
code `storage.store.write_failure` looks for. The only module that imports psycopg, lazily.
"""

from __future__ import annotations

import functools
import re
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from decimal import Decimal
from typing import Any

from alertd.common.redact import safe_text
from alertd.storage import pgschema
from alertd.storage.location import INSTALL, StateURL
from alertd.storage.schema import LATEST, SchemaError

SESSION = {
    "connect_timeout": 5,
    "keepalives": 1, "keepalives_idle": 5, "keepalives_interval": 2, "keepalives_count": 3,
    "tcp_user_timeout": 10000,
    "options": "-c statement_timeout=30000 -c idle_in_transaction_session_timeout=15000 "
               "-c tcp_keepalives_idle=5 -c tcp_keepalives_interval=2 "
               "-c tcp_keepalives_count=3",
}
"""Bounds on a dead peer, both ways: the client gives up on a silent server after 5 + 3 × 2 s
of TCP keepalives (10 s for data left unacknowledged), and the server ends the session of a
silent client (a dead leader, with its advisory lock) after the same, or after 15 s idle
inside a transaction; no statement runs past 30 s."""

LOST = 10
"""SQLite's SQLITE_IOERR, carried by an error that means the session is gone."""
_WRITE_CODES = {"53100": 13, "53000": 13, "25006": 8, "58030": 10}
"""SQLSTATEs that mean the server takes no writes now: disk full, out of resources, read
only, I/O error; as the SQLite codes (full, full, read-only, I/O) write_failure knows."""


class PgError(sqlite3.DatabaseError):
    """A PostgreSQL error the stages see as an sqlite3.DatabaseError."""


class PgIntegrityError(sqlite3.IntegrityError):
    pass


class PgOperationalError(sqlite3.OperationalError):
    pass


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:  # pragma: no cover - the extra is installed for the tests
        raise ModuleNotFoundError(INSTALL) from None
    return psycopg


def _wrap(exc: Exception, conn: Any, secret: str | None = None) -> sqlite3.Error:
    psycopg = _psycopg()
    state = getattr(exc, "sqlstate", None) or ""
    text = safe_text(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)
    if secret:  # printed by `alertd status` too, which no log formatter masks
        text = text.replace(secret, "***")
    if isinstance(exc, psycopg.IntegrityError):
        out: sqlite3.Error = PgIntegrityError(text)
    elif isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        out = PgOperationalError(text)
    else:
        out = PgError(text)
    lost = conn is None or conn.closed or state.startswith(("08", "57P"))
    code = LOST if lost else _WRITE_CODES.get(state)
    if code is not None:
        out.sqlite_errorcode = code  # type: ignore[attr-defined]
    out.sqlstate = state  # type: ignore[attr-defined]
    return out


@functools.lru_cache(maxsize=4096)
def translate(sql: str, many: bool = False) -> tuple[str, bool]:
    """SQLite's SQL as PostgreSQL's, and whether it returns the new row's id (`RETURNING id`,
    for `lastrowid`); raises ValueError for a statement it cannot translate."""
    text = sql.strip()
    upper = text.upper()
    if upper == "BEGIN IMMEDIATE":
        return "BEGIN", False
    if upper == "PRAGMA DATA_VERSION":  # changes when a silence is added, ended or pruned
        return "SELECT COALESCE(SUM(xmin::text::bigint), 0) FROM silences", False
    if upper.startswith("PRAGMA"):
        raise ValueError(f"no PostgreSQL form of {text!r}")
    text = re.sub(r"FROM sqlite_master WHERE name\s*=",
                  "FROM information_schema.tables WHERE table_schema = current_schema() "
                  "AND table_name =", text)
    text = re.sub(r"\bIN\s*\(\s*\)", "IN (SELECT NULL WHERE FALSE)", text)  # SQLite's IN ()
    returning = False
    m = re.match(r"INSERT OR (REPLACE|IGNORE) INTO (\w+)\s*(\(([^)]*)\))?\s*", text, re.I)
    if m:
        table, rest = m.group(2), text[m.end():]
        text = f"INSERT INTO {table} {m.group(3) or ''}{' ' if m.group(3) else ''}{rest}"
        if m.group(1).upper() == "IGNORE":
            text += " ON CONFLICT DO NOTHING"
        else:
            text += _upsert(table, m.group(4), rest)
    m = re.match(r"INSERT INTO (\w+)", text, re.I)
    if m and not many and "RETURNING" not in text.upper():
        info = _table(m.group(1))
        if info is not None and info.identity:
            text += " RETURNING id"
            returning = True
    return _placeholders(text), returning


def _table(name: str) -> pgschema.Table | None:
    return pgschema.TABLES.get(name) or pgschema.PG_ONLY.get(name)


def _upsert(table: str, named: str | None, rest: str) -> str:
    info = _table(table)
    if info is None or not info.key:
        raise ValueError(f"INSERT OR REPLACE into {table}, a table without a key")
    if named:
        columns = [c.strip() for c in named.split(",")]
    else:
        values = re.match(r"VALUES\s*\(([^)]*)\)", rest, re.I)
        if values is None:
            raise ValueError(f"INSERT OR REPLACE into {table} without VALUES (...)")
        columns = list(info.columns[:len(values.group(1).split(","))])
    update = [c for c in columns if c not in info.key]
    if not update:
        return f" ON CONFLICT ({', '.join(info.key)}) DO NOTHING"
    return (f" ON CONFLICT ({', '.join(info.key)}) DO UPDATE SET "
            + ", ".join(f"{c} = EXCLUDED.{c}" for c in update))


def _placeholders(sql: str) -> str:
    """`?` as `%s` outside string literals, and every `%` doubled (psycopg's escape)."""
    out, quoted = [], False
    for ch in sql:
        if ch == "'":
            quoted = not quoted
        if ch == "%":
            out.append("%%")
        elif ch == "?" and not quoted:
            out.append("%s")
        else:
            out.append(ch)
    return "".join(out)


class Cursor:
    """What a stage reads from an executed statement, as sqlite3.Cursor has it."""

    def __init__(self, cur: Any, lastrowid: int | None, owner: PgConnection) -> None:
        self._cur, self.lastrowid, self._owner = cur, lastrowid, owner
        self.rowcount = cur.rowcount

    def fetchone(self) -> tuple[Any, ...] | None:
        if self._cur.description is None:
            return None
        with self._owner.errors():
            return self._cur.fetchone()  # type: ignore[no-any-return]

    def fetchall(self) -> list[tuple[Any, ...]]:
        if self._cur.description is None:
            return []
        with self._owner.errors():
            return self._cur.fetchall()  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return iter(self.fetchall())


class PgConnection:
    """One PostgreSQL session, used as the stages use an sqlite3 connection."""

    def __init__(self, url: StateURL, *, name: str = "alertd") -> None:
        psycopg = _psycopg()
        self.url = url
        try:
            self._conn = psycopg.connect(url.reveal(), autocommit=True,
                                         application_name=name, **SESSION)
        except psycopg.Error as exc:
            raise _wrap(exc, None, url.password) from None
        self._conn.adapters.register_loader("numeric", _NumericLoader)
        self.backend = self._conn.info.backend_pid
        """This session's server process id: what pg_locks and pg_terminate_backend name."""

    @property
    def in_transaction(self) -> bool:
        status = self._conn.pgconn.transaction_status
        return bool(status in (1, 2, 3))  # ACTIVE, INTRANS, INERROR

    @property
    def lost(self) -> bool:
        """The session is gone (terminated, the server restarted, the network cut)."""
        return bool(self._conn.closed or self._conn.broken)

    def errors(self) -> _Errors:
        return _Errors(self)

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        query, returning = translate(sql)
        if query == "COMMIT" and self._conn.pgconn.transaction_status == 3:  # INERROR
            self._conn.execute("ROLLBACK")  # PostgreSQL would roll back and say COMMIT
            raise PgOperationalError("the transaction failed before its commit; nothing of "
                                     "it was kept")
        with self.errors():
            cur = self._conn.execute(query, tuple(params))
            row = cur.fetchone() if returning else None
        return Cursor(cur, None if row is None else int(row[0]), self)

    def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> Cursor:
        query, _ = translate(sql, many=True)
        with self.errors():
            cur = self._conn.cursor()
            cur.executemany(query, [tuple(r) for r in rows])
        return Cursor(cur, None, self)

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> PgConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        """Like sqlite3's in autocommit mode: each statement committed on its own."""


class _Errors:
    """Re-raise psycopg's errors as sqlite3's (see the module's docstring)."""

    def __init__(self, owner: PgConnection) -> None:
        self._owner = owner

    def __enter__(self) -> None:
        return None

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if exc is not None and isinstance(exc, _psycopg().Error):
            raise _wrap(exc, self._owner._conn) from None  # type: ignore[arg-type]


def _numeric_loader_base() -> Any:
    return _psycopg().adapt.Loader


class _NumericLoader(_numeric_loader_base()):  # type: ignore[misc]
    """SUM over a BIGINT is NUMERIC on PostgreSQL, an integer on SQLite: give an int."""

    def load(self, data: Any) -> int | Decimal:
        text = bytes(data).decode()
        return int(text) if text.lstrip("-").isdigit() else Decimal(text)


def connect(url: StateURL, name: str = "alertd") -> PgConnection:
    return PgConnection(url, name=name)


def version(db: PgConnection) -> int:
    """The version a database records; 0 for one alertd has not set up."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone() is None:
        return 0
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    return int(row[0]) if row else 0


def migrate(db: PgConnection) -> int:
    """Create the layout of version BASE in one transaction, then run the later migrations;
    a database of a newer alertd is refused. Two alertd starting at once on a new database
    serialise on a transaction-scoped advisory lock, so only one creates it."""
    db.execute("BEGIN")
    try:
        db.execute("SELECT pg_advisory_xact_lock(?)", (MIGRATE_KEY,))
        have = version(db)
        if have > LATEST:
            raise SchemaError(f"the state database is of version {have}, newer than this "
                              f"alertd knows ({LATEST}); run the newer alertd, or point "
                              "`state:` at another database")
        if have == 0:
            for statement in pgschema.DDL.split(";"):
                if statement.strip():
                    db.execute(statement)
            have = pgschema.BASE
        for number in range(have + 1, LATEST + 1):
            pgschema.MIGRATIONS[number](db)
        db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(LATEST),))
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction and not db.lost:
            db.execute("ROLLBACK")
        raise
    return LATEST


MIGRATE_KEY = 0x616C657274640001
"""The advisory lock (a bigint) held while the layout is created or migrated."""
