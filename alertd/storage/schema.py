"""The state file's tables and their versions: each change is one numbered migration, run in
order from the version the file records, so any earlier file opens as the current one.

Version 1 is the layout before versions were counted; files of that time may already hold
the columns of migrations 2-4 (they were added in place), so those three look before they add.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

V1 = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    source TEXT NOT NULL, order_id TEXT NOT NULL, status TEXT, order_qty TEXT,
    announced TEXT NOT NULL DEFAULT '0', updated REAL NOT NULL,
    PRIMARY KEY (source, order_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS fills (
    source TEXT NOT NULL, fill_id TEXT NOT NULL, order_id TEXT NOT NULL, seen REAL NOT NULL,
    PRIMARY KEY (source, fill_id)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS levels (
    subject TEXT PRIMARY KEY, a TEXT, b TEXT, c TEXT, updated REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS disarmed (
    rule_key TEXT NOT NULL, subject TEXT NOT NULL, since REAL NOT NULL,
    PRIMARY KEY (rule_key, subject)) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT, created REAL NOT NULL, notifier TEXT NOT NULL,
    rule TEXT NOT NULL, kind TEXT NOT NULL, account TEXT NOT NULL, severity TEXT NOT NULL,
    title TEXT NOT NULL, body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_at REAL NOT NULL, last_error TEXT, done_at REAL);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (notifier, status, next_at);
CREATE TABLE IF NOT EXISTS groups (
    id INTEGER PRIMARY KEY AUTOINCREMENT, rule TEXT NOT NULL, gkey TEXT NOT NULL,
    due REAL NOT NULL, alert TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS groups_key ON groups (rule, gkey);
CREATE TABLE IF NOT EXISTS fill_log (
    time REAL NOT NULL, account TEXT NOT NULL, symbol TEXT NOT NULL, side TEXT NOT NULL,
    qty TEXT NOT NULL, quote TEXT, fee TEXT, fee_asset TEXT);
CREATE INDEX IF NOT EXISTS fill_log_time ON fill_log (time);
CREATE TABLE IF NOT EXISTS health (
    source TEXT PRIMARY KEY, exchange TEXT NOT NULL, state TEXT NOT NULL, last_frame REAL,
    connects INTEGER NOT NULL, updated REAL NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS drops (
    source TEXT NOT NULL, reason TEXT NOT NULL, count INTEGER NOT NULL, example TEXT,
    PRIMARY KEY (source, reason)) WITHOUT ROWID;
"""


class SchemaError(Exception):
    """The state file is of a version this alertd does not know (written by a newer one)."""


def _script(db: sqlite3.Connection, sql: str) -> None:
    """Statements one by one: `executescript` would commit the migration's transaction."""
    for statement in sql.split(";"):
        if statement.strip():
            db.execute(statement)


def _add_column(table: str, column: str, ddl: str) -> Callable[[sqlite3.Connection], None]:
    def add(db: sqlite3.Connection) -> None:
        if column not in {row[1] for row in db.execute(f"PRAGMA table_info({table})")}:
            db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {ddl}")
    return add


def _streams(db: sqlite3.Connection) -> None:
    """When each stream was first watched, as a fact: before, a stream with no order or fill
    rows (an idle account after housekeeping) counted as never seen, and a gap's fills were
    recorded as history. Streams already in the file were watched since their first row."""
    db.execute("CREATE TABLE streams (source TEXT PRIMARY KEY, watched_since REAL NOT NULL) "
               "WITHOUT ROWID")
    db.execute("INSERT OR IGNORE INTO streams SELECT source, MIN(t) FROM ("
               "SELECT source, updated AS t FROM orders UNION ALL "
               "SELECT source, seen FROM fills UNION ALL "
               "SELECT source, updated FROM health) GROUP BY source")


SILENCES = """
CREATE TABLE silences (
    id INTEGER PRIMARY KEY AUTOINCREMENT, rule TEXT NOT NULL, account TEXT,
    matchers TEXT NOT NULL, created REAL NOT NULL, expires REAL NOT NULL,
    comment TEXT NOT NULL DEFAULT '', silenced INTEGER NOT NULL DEFAULT 0);
CREATE INDEX silences_expires ON silences (expires);
CREATE TABLE silenced_levels (
    rule_key TEXT NOT NULL, subject TEXT NOT NULL, rule TEXT NOT NULL, silence INTEGER NOT NULL,
    PRIMARY KEY (rule_key, subject)) WITHOUT ROWID;
"""
"""`alertd silence`'s rows, and the level firings they held (see shaping/silence.py)."""


MIGRATIONS: tuple[Callable[[sqlite3.Connection], None], ...] = (
    lambda db: _script(db, V1),                                             # 1
    _add_column("orders", "credit", "TEXT NOT NULL DEFAULT '0'"),           # 2 fill credits
    _add_column("outbox", "target", "TEXT NOT NULL DEFAULT ''"),            # 3 row per URL
    _add_column("outbox", "held", "INTEGER NOT NULL DEFAULT 0"),            # 4 quiet hours
    _streams,                                                               # 5 watched since
    lambda db: db.execute(                                                  # 6 last levels
        "CREATE TABLE last_levels (subject TEXT PRIMARY KEY, kind TEXT NOT NULL, "
        "fields TEXT NOT NULL, updated REAL NOT NULL) WITHOUT ROWID"),
    _add_column("groups", "wait", "REAL NOT NULL DEFAULT 3600"),            # 7 clock steps
    lambda db: _script(db, SILENCES),                                       # 8 silences
)
LATEST = len(MIGRATIONS)


def version(db: sqlite3.Connection) -> int:
    """The version a file records; 0 for a new (empty) file."""
    if db.execute("SELECT 1 FROM sqlite_master WHERE name='meta'").fetchone() is None:
        return 0
    row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
    return int(row[0]) if row else 1


def migrate(db: sqlite3.Connection) -> int:
    """Bring the file to LATEST, each migration committed with its new version number."""
    have = version(db)
    if have > LATEST:
        raise SchemaError(f"the state file is of version {have}, newer than this alertd "
                          f"knows ({LATEST}); run the newer alertd, or point `state:` at "
                          "another file")
    for number in range(have + 1, LATEST + 1):
        db.execute("BEGIN IMMEDIATE")
        try:
            MIGRATIONS[number - 1](db)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('schema', ?)", (str(number),))
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return LATEST
