"""`alertd status` on a state file that is not one: a sentence, exit 1, never a traceback."""

from __future__ import annotations

import sqlite3
import time

import pytest

from alertd.cli.main import main


@pytest.mark.parametrize("make", ["empty", "text", "foreign"])
def test_status_on_a_file_that_is_no_state_file_says_so(tmp_path, capsys, make):
    path = tmp_path / "state.db"
    if make == "empty":
        path.write_bytes(b"")
    elif make == "text":
        path.write_text("accounts: []\n" * 200)
    else:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE photos (id INTEGER)")
    assert main(["status", "--state", str(path)]) == 1
    out = capsys.readouterr()
    assert f"{path}: not an alertd state file" in out.out + out.err
    assert "Traceback" not in out.out + out.err


def test_status_check_is_one_line_and_a_monitoring_plugin_exit_code(tmp_path, sim, rules_dir,
                                                                    capsys):
    from alertd.cli.status import CRITICAL, OK, UNKNOWN, WARNING, check
    from tests.conftest import DD_KEY, agent_config, running
    from tests.sinks import HttpSink, wait_for

    state = tmp_path / "state.db"
    assert check(state) == UNKNOWN
    assert capsys.readouterr().out.startswith("UNKNOWN: no state file")
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        with running(cfg, rules_dir) as agent:
            assert sim.wait_ready(DD_KEY)
            assert wait_for(lambda: all(s.state == "connected" for s in agent.streams), 10)
            agent.save_health()
            assert check(state) == OK
            assert capsys.readouterr().out == "OK: 2/2 streams connected, alertd running\n"
            with sqlite3.connect(state) as db:  # one stream waits its turn in the REST line
                db.execute("UPDATE health SET state='catch_up_queued' WHERE source="
                           "(SELECT MIN(source) FROM health)")
            assert check(state) == OK
            assert capsys.readouterr().out == ("OK: 1/2 streams connected, 1 waiting their "
                                               "turn for a catch-up, alertd running\n")
            now = time.time()  # wall clock ok: the running agent stamps its state with it
            assert check(state, now=now + 3600) == CRITICAL  # written an hour ago: a stall
            assert "state file not written for" in capsys.readouterr().out
            with sqlite3.connect(state) as db:
                db.execute("INSERT INTO outbox (created, notifier, rule, kind, account, "
                           "severity, title, body, next_at) VALUES (?, 'hook', 'r', 'fill', "
                           "'main', 'info', 't', 'b', ?)", (now - 3600, now + 3600))
            assert check(state, now=now) == WARNING
            assert capsys.readouterr().out.startswith("WARNING: an alert pending for")
    assert check(state) == CRITICAL
    assert "alertd is not running" in capsys.readouterr().out


RULES = """
rules:
  - name: fill
    on: fill
    notify: [hook]
"""
