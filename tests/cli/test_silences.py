"""`alertd silence` for real: the command line writing the state file of an alertd that runs
(its run loop and timers included) against the simulated exchanges, delivering to a webhook."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path

import pytest

from alertd.cli.main import main
from alertd.runtime.agent import Agent
from alertd.shaping import silence as silences
from alertd.sim.frames import dd_balance, dd_order, sx_trade
from alertd.storage.store import Store
from tests.conftest import API_KEY, DD_KEY, SPOT_KEY, USER, agent_config, build_agent, write
from tests.sinks import wait_for

RULES = """
rules:
  - name: fills
    on: fill
    notify: [hook]
    group_wait: 0
    title: "fill {account} {trade_id}"
  - name: low-ada
    on: balance
    when: {asset: ada, free: {lt: 500}}
    resolved: true
    notify: [hook]
    group_wait: 0
    title: "low ada {free}"
"""


@contextmanager
def daemon(cfg: Path, rules: Path) -> Iterator[Agent]:
    """An agent in its own run loop, as `alertd run` has it (the timers turn only there)."""
    agent = build_agent(cfg, rules)
    thread = threading.Thread(target=agent.run, name="agent", daemon=True)
    thread.start()
    try:
        yield agent
    finally:
        agent.request_stop()
        thread.join(15)


def alertd(capsys, *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def silenced(capsys, cfg: Path, silence_id: int) -> int:
    """The count `silence list` shows for a silence."""
    _, out, _ = alertd(capsys, "silence", "list", "--all", "--config", str(cfg))
    line = next(x for x in out.splitlines() if x.startswith(f"  #{silence_id} "))
    return int(line.rsplit(", ", 1)[1].split()[0])


def ready(sim, connects: int = 1) -> bool:
    return sim.wait_ready(DD_KEY, connects) and sim.wait_ready(SPOT_KEY, connects, channels=4)


def main_fill(n: int) -> dict:
    return dd_order(f"o{n}", "partially_filled", [(f"r{n}", "800")], "800")


def test_a_silence_added_while_alertd_runs_holds_its_alerts_until_expired(
        tmp_path, sim, http_sink, rules_dir, capsys):
    cfg = agent_config(tmp_path, sim, {"hook": http_sink.url}, markets="[spot]")
    with daemon(cfg, rules_dir):
        assert ready(sim)
        code, out, err = alertd(capsys, "silence", "add", "--config", str(cfg), "--rules",
                                str(rules_dir), "--rule", "fills", "--account", "main",
                                "--for", "2h", "--comment", "exchange maintenance")
        assert code == 0 and err == ""
        assert out.startswith("silence 1 added: rule fills, account main, until ")
        assert out.endswith(" (2h); a running alertd applies it to its next alert\n")
        sim.push_deltadefi(API_KEY, main_fill(1))
        sim.push_sodex(USER, "spot", "accountTrade", sx_trade(11, "0.2"))
        assert wait_for(lambda: "fill desk vBTC_vUSDC:11" in http_sink.titles(), 10)
        assert wait_for(lambda: silenced(capsys, cfg, 1) == 1, 10)
        assert http_sink.titles() == ["fill desk vBTC_vUSDC:11"]

        code, out, _ = alertd(capsys, "status", "--config", str(cfg))
        assert "silences (active; silenced: alerts held, never sent):\n  #1   fills " \
               "[account main] until " in out
        assert ' left), 1 silenced; "exchange maintenance"\n' in out

        code, out, _ = alertd(capsys, "silence", "expire", "1", "--config", str(cfg))
        assert (code, out) == (0, "silence 1 expired: rule fills, account main; it silenced "
                                  "1 alerts\n")
        sim.push_deltadefi(API_KEY, main_fill(2))
        assert wait_for(lambda: "fill main r2" in http_sink.titles(), 10)
        assert "fill main r1" not in http_sink.titles()
        _, out, _ = alertd(capsys, "silence", "list", "--config", str(cfg))
        assert out == "silences (active):\n  none\n"
        _, out, _ = alertd(capsys, "silence", "expire", "1", "--config", str(cfg))
        assert out.startswith("silence 1 had already ended, at ")


def test_a_silence_survives_a_restart_and_a_level_still_low_at_its_end_is_sent_then(
        tmp_path, sim, http_sink, rules_dir, capsys):
    cfg = agent_config(tmp_path, sim, {"hook": http_sink.url}, markets="[spot]")
    add = ("silence", "add", "--config", str(cfg), "--account", "main", "--for", "1h")
    with daemon(cfg, rules_dir):
        assert ready(sim)
        assert alertd(capsys, *add, "--rule", "low-ada")[0] == 0
        assert alertd(capsys, *add, "--rule", "fills")[0] == 0
        sim.push_deltadefi(API_KEY, dd_balance("420"))
        assert wait_for(lambda: silenced(capsys, cfg, 1) == 1, 10)
    with daemon(cfg, rules_dir):
        assert ready(sim, connects=2)
        sim.push_deltadefi(API_KEY, main_fill(1))
        sim.push_sodex(USER, "spot", "accountTrade", sx_trade(11, "0.2"))
        assert wait_for(lambda: "fill desk vBTC_vUSDC:11" in http_sink.titles(), 10)
        assert wait_for(lambda: silenced(capsys, cfg, 2) == 1, 10)
        assert http_sink.titles() == ["fill desk vBTC_vUSDC:11"]
        # ended by hand, the level that still holds is said within a second, once
        assert alertd(capsys, "silence", "expire", "#1", "--config", str(cfg))[0] == 0
        assert wait_for(lambda: "low ada 420" in http_sink.titles(), 10)
        sim.push_deltadefi(API_KEY, dd_balance("600"))
        assert wait_for(lambda: "Resolved: low ada 600" in http_sink.titles(), 10)
        assert http_sink.titles().count("low ada 420") == 1


def test_a_failure_notice_of_alertd_itself_is_never_silenced(tmp_path, sim, http_sink,
                                                             rules_dir, capsys):
    cfg = agent_config(tmp_path, sim, {"hook": http_sink.url}, markets="[spot]")
    code, _, err = alertd(capsys, "silence", "add", "--config", str(cfg), "--rule", "alertd",
                          "--for", "1h")
    assert (code, err) == (2, "alertd silence: alertd's own notices (rule 'alertd') are "
                              "never silenced\n")
    with daemon(cfg, rules_dir) as agent:
        assert ready(sim)
        with closing(sqlite3.connect(tmp_path / "state.db", isolation_level=None)) as db:
            silences.add(db, "alertd", None, (), 3600, "past the CLI", agent.pipeline.clock())
        write(rules_dir / "r.yaml", "rules: [{name: broken}]\n")
        agent.request_reload()
        assert wait_for(lambda: "alertd: reload failed" in http_sink.titles(), 10)
    assert silenced(capsys, cfg, 1) == 0


@pytest.mark.parametrize(("argv", "says"), [
    (["--rule", "fils", "--for", "1h"],
     "unknown rule 'fils'; did you mean 'fills'?; rules are: fills, low-ada"),
    (["--rule", "fills", "--for", "100d"],
     "--for: '100d' is not a duration of at most 90d (e.g. 30m, 2h, 7d); every silence ends"),
    (["--rule", "fills", "--for", "soon"],
     "--for: 'soon' is not a duration of at most 90d (e.g. 30m, 2h, 7d); every silence ends"),
    (["--rule", "fills", "--for", "1h", "--match", "symbl=ADAUSDM"],
     "--match: no event field 'symbl'; did you mean 'symbol'?; fields are: account, exchange, "
     "market, time, order_id, trade_id, symbol, side, price, qty, quote_qty, fee, fee_asset, "
     "role, filled_qty, order_qty, complete, caught_up, fills"),
    (["--rule", "fills", "--for", "1h", "--match", "qty=lots"],
     "--match qty: 'lots' is not a number"),
    (["--rule", "fills", "--for", "1h", "--account", "mian"],
     "unknown account 'mian'; did you mean 'main'?; accounts are: main, desk"),
])
def test_a_mistake_is_one_line_and_exit_status_2(tmp_path, sim, rules_dir, capsys, argv, says):
    cfg = agent_config(tmp_path, sim, {"hook": "json://127.0.0.1:9/"})
    Store(tmp_path / "state.db").close()  # as alertd leaves it
    code, out, err = alertd(capsys, "silence", "add", "--config", str(cfg), "--rules",
                            str(rules_dir), *argv)
    assert (code, out, err) == (2, "", f"alertd silence: {says}\n")


def test_the_installed_command_refuses_without_a_traceback(tmp_path):
    missing = tmp_path / "state.db"
    done = subprocess.run([sys.executable, "-m", "alertd", "silence", "expire", "3", "--state",
                           str(missing)], capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"alertd silence: {missing}: no state file yet; alertd creates it "
                           "when it first runs (or pass --state FILE)\n")
    done = subprocess.run([sys.executable, "-m", "alertd", "silence", "add", "--rule", "x",
                           "--state", str(missing)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "--for" in done.stderr and "Traceback" not in done.stderr
