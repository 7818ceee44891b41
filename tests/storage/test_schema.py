"""Every earlier state file opens as the current one: the migrations run in order from the
version the file records, and what it held is kept."""

from __future__ import annotations

import sqlite3

import pytest

from alertd.storage.schema import LATEST, V1, SchemaError, migrate, version
from alertd.storage.store import Store

EARLIER = {
    "1: before fill credits": (),
    "1 with fill credits": ("ALTER TABLE orders ADD COLUMN credit TEXT NOT NULL DEFAULT '0'",),
    "1 with a row per URL": ("ALTER TABLE orders ADD COLUMN credit TEXT NOT NULL DEFAULT '0'",
                             "ALTER TABLE outbox ADD COLUMN target TEXT NOT NULL DEFAULT ''"),
    "1 with quiet hours": ("ALTER TABLE orders ADD COLUMN credit TEXT NOT NULL DEFAULT '0'",
                           "ALTER TABLE outbox ADD COLUMN target TEXT NOT NULL DEFAULT ''",
                           "ALTER TABLE outbox ADD COLUMN held INTEGER NOT NULL DEFAULT 0"),
}
"""The layouts files had in the field, all recorded as version 1 (the columns were added in
place, without a version), each as the alertd of its time wrote it."""


def earlier_file(path, changes) -> None:
    db = sqlite3.connect(path)
    db.executescript(V1)
    for change in changes:
        db.execute(change)
    db.execute("INSERT INTO meta VALUES ('schema', '1')")
    db.execute("INSERT INTO orders (source, order_id, status, order_qty, announced, updated) "
               "VALUES ('desk/spot', 'o1', 'filled', '1', '1', 1700000000)")
    db.execute("INSERT INTO health VALUES ('main/spot', 'deltadefi', 'connected', 1700000100, "
               "3, 1700000200)")
    db.execute("INSERT INTO outbox (created, notifier, rule, kind, account, severity, title, "
               "body, next_at) VALUES (1700000000, 'hook', 'r', 'fill', 'main', 'info', 't', "
               "'b', 1700000000)")
    db.commit()
    db.close()


def columns(db, table) -> set[str]:
    return {row[1] for row in db.execute(f"PRAGMA table_info({table})")}


@pytest.mark.parametrize("name", EARLIER)
def test_a_file_of_each_earlier_layout_opens_current_and_keeps_its_rows(tmp_path, name):
    path = tmp_path / "state.db"
    earlier_file(path, EARLIER[name])
    store = Store(path)
    db = store.db
    assert version(db) == LATEST
    assert {"credit"} <= columns(db, "orders") and {"target", "held"} <= columns(db, "outbox")
    assert db.execute("SELECT order_id, credit FROM orders").fetchall() == [("o1", "0")]
    assert db.execute("SELECT title, target, held FROM outbox").fetchall() == [("t", "", 0)]
    # streams that ran before the fact was stored count as watched since their first row
    assert dict(db.execute("SELECT source, watched_since FROM streams")) == {
        "desk/spot": 1700000000.0, "main/spot": 1700000200.0}
    store.close()
    assert version(sqlite3.connect(path)) == LATEST  # and opening it again changes nothing
    Store(path).close()


def test_a_new_file_is_made_at_the_latest_version(tmp_path):
    store = Store(tmp_path / "new.db")
    assert version(store.db) == LATEST
    assert dict(store.db.execute("SELECT key, value FROM meta"))["schema"] == str(LATEST)


def test_a_file_from_a_newer_alertd_is_refused_not_rewritten(tmp_path):
    path = tmp_path / "state.db"
    db = sqlite3.connect(path, isolation_level=None)
    migrate(db)
    db.execute("UPDATE meta SET value=? WHERE key='schema'", (str(LATEST + 1),))
    with pytest.raises(SchemaError, match="newer than this alertd"):
        migrate(db)
    assert version(db) == LATEST + 1
