"""The PostgreSQL store: the same layout, SQL and failure rules as the SQLite file, against
a real server (tests/pg.py); what only PostgreSQL can do wrong is tested here."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from alertd.cli.main import main
from alertd.delivery.outbox import Outbox
from alertd.domain.alerts import Alert
from alertd.runtime.health import save_health
from alertd.storage import pgschema
from alertd.storage.location import StateURL, state_location
from alertd.storage.postgres import translate
from alertd.storage.store import StateWriteError, Store, write_failure

ALERT = Alert(rule="r", kind="fill", account="main", severity="info", title="t", body="b",
              notify=("hook",))


def test_every_table_has_the_sqlite_file_s_columns_in_its_order(tmp_path):
    """The translation of `INSERT ... VALUES` leans on the column order: the next migration
    must describe its columns in pgschema.TABLES too, or this fails."""
    db = Store(tmp_path / "s.db").db
    names = [r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table' "
                                      "AND name NOT LIKE 'sqlite_%'")]
    assert sorted(names) == sorted(pgschema.TABLES)
    for name in names:
        columns = tuple(r[1] for r in db.execute(f"PRAGMA table_info({name})"))
        assert columns == pgschema.TABLES[name].columns, name


def test_sqlite_statements_are_translated_once_each():
    assert translate("INSERT OR REPLACE INTO levels VALUES (?, ?, ?, ?, ?)")[0] == (
        "INSERT INTO levels VALUES (%s, %s, %s, %s, %s) ON CONFLICT (subject) DO UPDATE SET "
        "a = EXCLUDED.a, b = EXCLUDED.b, c = EXCLUDED.c, updated = EXCLUDED.updated")
    assert translate("INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?)")[0].endswith(
        "ON CONFLICT DO NOTHING")
    assert translate("INSERT INTO outbox (created) VALUES (?)") == (
        "INSERT INTO outbox (created) VALUES (%s) RETURNING id", True)
    assert translate("INSERT INTO outbox (created) VALUES (?)", many=True)[1] is False
    assert translate("SELECT 1 FROM x WHERE a LIKE '%?%' AND b=?")[0] == (
        "SELECT 1 FROM x WHERE a LIKE '%%?%%' AND b=%s")
    assert translate("DELETE FROM t WHERE k NOT IN ()")[0] == (
        "DELETE FROM t WHERE k NOT IN (SELECT NULL WHERE FALSE)")
    assert translate("BEGIN IMMEDIATE")[0] == "BEGIN"


def test_reals_are_doubles_decimals_text_and_text_sorts_by_code_point(pg_url):
    store = Store(state_location(pg_url))
    with store.transaction():
        store.db.execute("INSERT INTO levels VALUES (?, ?, ?, ?, ?)",
                         ("b", "0.10000000000000000001", None, None, 1764047820.123456))
        store.db.execute("INSERT INTO levels VALUES (?, ?, ?, ?, ?)", ("B", "1", None, None, 1))
        store.db.execute("INSERT INTO levels VALUES (?, ?, ?, ?, ?)", ("a", "1", None, None, 1))
    rows = store.db.execute("SELECT subject, a, updated FROM levels ORDER BY subject").fetchall()
    assert [r[0] for r in rows] == ["B", "a", "b"]  # as SQLite's BINARY orders them
    assert rows[2][1:] == ("0.10000000000000000001", 1764047820.123456)
    assert store.db.execute("SELECT COALESCE(SUM(connects), 0) FROM health").fetchone()[0] == 0
    store.close()


def test_health_drops_and_status_read_the_same_on_postgres(pg_url, capsys):
    store = Store(state_location(pg_url), clock=lambda: 1764047820.0)
    save_health(store, [("main/spot", "deltadefi", "connected", 1764047819.0, 2)],
                [("main/spot", "bad_json", 3, "{not json")])
    save_health(store, [("main/spot", "deltadefi", "connected", 1764047819.5, 2)],
                [("main/spot", "bad_json", 2, "{x")])
    with store.transaction():
        Outbox(store).add(ALERT)
    store.close()
    assert main(["status", "--state", pg_url]) == 0
    out = capsys.readouterr().out
    assert "main/spot" in out and "bad_json        5" in out and "pending 1" in out
    assert "alertd: no leader" in out


def test_a_lost_session_is_a_write_failure_and_nothing_of_it_is_kept(pg_url, pg_cluster):
    store = Store(state_location(pg_url))
    outbox = Outbox(store)
    assert pg_cluster.terminate(store.db.backend)
    with pytest.raises((StateWriteError, sqlite3.OperationalError)) as caught, \
            store.transaction():
        outbox.add(ALERT)
    assert write_failure(caught.value)  # the core holds the frame and stalls, as on SQLite
    store.abandon()
    assert store.flush_due_in() is None and store.db.lost
    assert Outbox(Store(state_location(pg_url))).counts() == {}


def test_a_password_is_never_shown_and_a_refused_connection_is_one_sentence(tmp_path,
                                                                          capsys):
    url = "postgresql://alertd:hunter2-secret@127.0.0.1:1/alertd"
    assert "hunter2" not in str(StateURL(url)) + repr(StateURL(url))
    assert main(["status", "--state", url]) == 1
    out = capsys.readouterr()
    assert "hunter2" not in out.out + out.err and "Traceback" not in out.out + out.err
    assert "postgresql://alertd:" in out.out


def test_without_psycopg_a_postgres_state_names_the_extra_to_install(tmp_path):
    code = ("import sys; sys.modules['psycopg'] = None; from alertd.cli import main; "
            "sys.exit(main(['status', '--state', 'postgresql://a@127.0.0.1:1/d']))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1
    assert 'pip install "alertd[postgres]"' in done.stdout
    assert "Traceback" not in done.stdout + done.stderr
    assert "psycopg" not in sys.modules or sqlite3  # the test process is not the one blocked


def test_only_the_adapter_imports_psycopg_and_sqlite_users_never_load_it(tmp_path):
    import alertd
    root = Path(alertd.__file__).parent
    importers = sorted(str(p.relative_to(root)) for p in root.rglob("*.py")
                       if re.search(r"^\s*(import|from) psycopg", p.read_text(), re.M))
    assert importers == ["storage/postgres.py"]
    code = ("import sys; from alertd.storage.store import Store; "
            f"Store({str(tmp_path / 's.db')!r}).close(); "
            "from alertd.cli.status import report; "
            "sys.exit('psycopg' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code], timeout=60).returncode == 0


def test_silence_add_list_and_expire_on_a_postgres_state(pg_url, capsys):
    Store(state_location(pg_url)).close()  # alertd set the database up
    assert main(["silence", "add", "--state", pg_url, "--rule", "fills", "--for", "2h",
                 "--comment", "maintenance"]) == 0
    assert main(["silence", "list", "--state", pg_url]) == 0
    assert main(["silence", "expire", "--state", pg_url, "1"]) == 0
    assert main(["silence", "list", "--all", "--state", pg_url]) == 0
    out = capsys.readouterr().out
    assert "silence 1 added" in out and "maintenance" in out and "silence 1 expired" in out
