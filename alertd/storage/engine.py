"""Which engine a state location means, and its connections: the seam between the Store and
SQLite or PostgreSQL, so the Store's transactions and every stage's SQL stay one code path.

psycopg is imported only here (through storage/postgres.py) and only for a PostgreSQL
location, so SQLite users never load it; a missing psycopg is one sentence naming the fix.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from alertd.storage.location import INSTALL, Location, StateURL, is_postgres

if TYPE_CHECKING:
    from alertd.storage.postgres import PgConnection


class MissingDriver(Exception):
    """A PostgreSQL state without psycopg installed; the message names the fix."""


def postgres_module() -> Any:
    """storage.postgres, or MissingDriver when psycopg is not installed."""
    try:
        from alertd.storage import postgres
    except ModuleNotFoundError as exc:
        raise MissingDriver(INSTALL) from (None if exc.name in (None, "psycopg") else exc)
    return postgres


def open_postgres(url: StateURL, connection: PgConnection | None = None,
                  name: str = "alertd") -> sqlite3.Connection:
    """A session on the state database brought to the current schema; `connection` is one
    opened already (the one holding the leader's lock). Typed as sqlite3's: the adapter
    offers the part of its API the stages use."""
    postgres = postgres_module()
    db = connection if connection is not None else postgres.connect(url, name)
    postgres.migrate(db)
    return cast(sqlite3.Connection, db)


def connect_postgres(url: StateURL, name: str = "alertd") -> sqlite3.Connection:
    """Another session, for a reader (a delivery worker, status, metrics)."""
    return cast(sqlite3.Connection, postgres_module().connect(url, name))


def open_reader(where: Location) -> sqlite3.Connection:
    """A connection that only reads, beside a running alertd: an SQLite file opened read-only
    (WAL lets it in beside the writer), or a PostgreSQL session; never creates anything."""
    if is_postgres(where):
        return connect_postgres(cast(StateURL, where), "alertd-reader")
    return sqlite3.connect(f"{Path(where).resolve().as_uri()}?mode=ro", uri=True, timeout=2)


def exists(where: Location) -> bool:
    """Whether there is state to read: a file for SQLite; a PostgreSQL database is asked."""
    return True if is_postgres(where) else Path(where).is_file()
