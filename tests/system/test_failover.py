"""Two real alertd processes on one PostgreSQL state: one leads, fenced by its session; the
other stands by, holding no socket, and takes over. Against the simulated exchange, a local
webhook and a throwaway PostgreSQL cluster (tests/pg.py); every wait is on a signal."""

from __future__ import annotations

import contextlib
import io
import os
import signal
import socket
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from alertd.cli.main import main
from alertd.runtime.leader import leader
from alertd.sim.frames import dd_balance, dd_order
from alertd.storage.engine import connect_postgres
from alertd.storage.location import StateURL
from tests.conftest import API_KEY, DD_KEY, agent_config
from tests.sinks import HttpSink, free_port, wait_for

RULES = """
rules:
  - name: fill
    on: fill
    notify: [hook]
    group_wait: 0
    title: "fill {trade_id}"
  - name: low
    on: balance
    when: {asset: ada, free: {lt: 500}}
    notify: [hook]
    group_wait: 0
    title: "low {free}"
"""


def configs(tmp_path: Path, sim, sink: HttpSink, url: str,
            metrics: dict[str, int] | None = None) -> dict[str, Path]:
    """One config per node, the same but for `node:` (and `metrics:`, if given)."""
    base = agent_config(tmp_path, sim, {"hook": sink.url}).read_text()
    base = base.replace(f"state: {tmp_path / 'state.db'}", f"state: {url}")
    out = {}
    for name in ("a", "b"):
        out[name] = tmp_path / f"{name}.yaml"
        extra = f"metrics: 127.0.0.1:{metrics[name]}\n" if metrics else ""
        out[name].write_text(base + f"node: {name}\n" + extra)
    return out


def role(port: int) -> str | None:
    """The role a node's metrics endpoint says it has."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
            text = reply.read().decode()
    except OSError:
        return None
    return next((r for r in ("leader", "standby") if f'alertd_role{{role="{r}"}} 1.0' in text),
                None)


def who_leads(url: str) -> tuple[str | None, dict[str, str]]:
    """(leader's node, {node: role}) as the database says; (None, {}) before it is set up."""
    try:
        db = connect_postgres(StateURL(url))
    except Exception:
        return None, {}
    try:
        backend, nodes = leader(db)
    except Exception:
        return None, {}
    finally:
        db.close()
    now = time.time()  # wall clock ok: the alertd processes stamp their heartbeats with it
    fresh = {n.node: n.role for n in nodes if now - n.heartbeat < 5}
    lead = next((n.node for n in nodes if backend is not None and n.backend == backend
                 and n.role == "leader"), None)
    return lead, fresh


def settled(url: str, lead: str | None = None) -> bool:
    """One leader and the other node a standby, both beating."""
    now, roles = who_leads(url)
    return now is not None and (lead is None or now == lead) and sorted(roles.values()) == [
        "leader", "standby"]


def fill(n: int) -> dict:
    return dd_order(f"o{n}", "filled", [(f"r{n}", "5")], "5")


def once_each(sink: HttpSink, titles: list[str]) -> bool:
    seen = Counter(sink.titles())
    return all(seen[t] >= 1 for t in titles)


def note(line: str) -> None:
    """The failover times measured, appended to $ALERTD_TIMINGS if set (the README's figures
    come from such runs); printed otherwise, for `pytest -s`."""
    print(line)
    if os.environ.get("ALERTD_TIMINGS"):
        with contextlib.suppress(OSError), Path(os.environ["ALERTD_TIMINGS"]).open("a") as f:
            f.write(line + "\n")


@pytest.fixture
def rules_dir(tmp_path) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "r.yaml").write_text(RULES.lstrip())
    return tmp_path / "rules"


def a_leads_b_stands_by(cfg: dict[str, Path], rules_dir: Path, spawn, pg_url: str, sim):
    """a started first and leading, b started after it and standing by, a's socket up."""
    a = spawn(cfg["a"], rules_dir)
    assert wait_for(lambda: who_leads(pg_url)[0] == "a", 30), a.stderr()
    b = spawn(cfg["b"], rules_dir)
    assert wait_for(lambda: settled(pg_url, "a"), 30), b.stderr()
    assert sim.wait_ready(DD_KEY, timeout=20)
    return a, b


def test_two_started_at_once_one_leads_and_the_standby_holds_no_socket(
        tmp_path, sim, rules_dir, spawn, pg_url, capsys):
    with HttpSink() as sink:
        ports = {"a": free_port(), "b": free_port()}
        cfg = configs(tmp_path, sim, sink, pg_url, ports)
        a, b = spawn(cfg["a"], rules_dir), spawn(cfg["b"], rules_dir)
        assert wait_for(lambda: settled(pg_url), 30), (a.stderr(), b.stderr())
        assert sim.wait_ready(DD_KEY, timeout=20)
        sim.push_deltadefi(API_KEY, dd_balance("100"))
        assert wait_for(lambda: "low 100" in sink.titles(), 20)
        lead, _ = who_leads(pg_url)
        other = "b" if lead == "a" else "a"
        assert wait_for(lambda: role(ports[lead]) == "leader", 10)
        assert wait_for(lambda: role(ports[other]) == "standby", 10)
        assert sim.connects[DD_KEY] == 1  # the standby never connected
        assert main(["status", "--state", pg_url]) == 0
        out = capsys.readouterr().out
        assert f"alertd: led by {lead}" in out and "standby" in out
        assert main(["status", "--check", "--state", pg_url]) == 0
        assert f"led by {lead}; standby: {other}" in capsys.readouterr().out
        for agent in (a, b):
            agent.signal(signal.SIGTERM)
        assert a.wait() == 0 and b.wait() == 0
        assert "Traceback" not in a.stderr() + b.stderr(), a.stderr() + b.stderr()
    assert sink.titles() == ["low 100"]  # once: the standby sent nothing


def test_kill_9_of_the_leader_with_alerts_pending_and_frames_flowing(
        tmp_path, sim, rules_dir, spawn, pg_url):
    with HttpSink() as sink:
        sink.fail_next = 10**6  # every try fails: the alerts stay pending in the database
        cfg = configs(tmp_path, sim, sink, pg_url)
        a, b = a_leads_b_stands_by(cfg, rules_dir, spawn, pg_url, sim)
        for n in range(3):
            sim.push_deltadefi(API_KEY, fill(n))
        assert wait_for(lambda: sink.requests >= 3, 20)
        a.proc.kill()  # SIGKILL, with its alerts pending and frames still coming
        killed = time.monotonic()
        sink.fail_next = 0
        for n in range(3, 6):
            sim.push_deltadefi(API_KEY, fill(n))  # to nobody: the catch-up restates them
        assert wait_for(lambda: who_leads(pg_url)[0] == "b", 30), b.stderr()
        took_lock = time.monotonic() - killed
        expected = [f"fill r{n}" for n in range(6)] + ["alertd on b took over from a"]
        assert wait_for(lambda: once_each(sink, expected), 40), (sink.titles(), b.stderr())
        first = min(sink.times) - killed
        assert sim.wait_ready(DD_KEY, connects=2, timeout=20)
        sim.push_deltadefi(API_KEY, fill(6))
        assert wait_for(lambda: "fill r6" in sink.titles(), 20)
        b.signal(signal.SIGTERM)
        assert b.wait() == 0
    assert Counter(sink.titles()) == Counter([*expected, "fill r6"])  # nothing twice
    note(f"- kill -9 of the leader: lock taken by the standby after {took_lock:.2f} s, first "
         f"alert from the new leader after {first:.2f} s")


def test_a_leader_whose_session_is_terminated_stops_and_someone_leads(
        tmp_path, sim, rules_dir, spawn, pg_url, pg_cluster):
    with HttpSink() as sink:
        cfg = configs(tmp_path, sim, sink, pg_url)
        a, b = a_leads_b_stands_by(cfg, rules_dir, spawn, pg_url, sim)
        db = connect_postgres(StateURL(pg_url))
        backend = leader(db)[0]
        db.close()
        assert backend is not None and pg_cluster.terminate(backend)
        cut = time.monotonic()
        assert wait_for(lambda: "no longer leads" in a.stderr(), 15), a.stderr()
        stopped = time.monotonic() - cut
        assert a.proc.poll() is None  # it lives on, as a standby
        assert wait_for(lambda: settled(pg_url), 30), (a.stderr(), b.stderr())
        lead, _ = who_leads(pg_url)
        assert sim.wait(lambda: sum(1 for _ in sim.clients(DD_KEY)) == 1, 20)
        sim.push_deltadefi(API_KEY, fill(1))
        assert wait_for(lambda: "fill r1" in sink.titles(), 30), (a.stderr(), b.stderr())
        for agent in (a, b):
            agent.signal(signal.SIGTERM)
        assert a.wait() == 0 and b.wait() == 0
        assert "Traceback" not in a.stderr() + b.stderr(), a.stderr() + b.stderr()
    titles = [t for t in sink.titles() if not t.startswith("alertd on")]
    assert titles == ["fill r1"]
    note(f"- pg_terminate_backend of the leader's session: it stopped leading after "
         f"{stopped:.2f} s; {lead} leads after")


def test_the_database_restarted_the_leader_resumes_or_hands_over_and_nothing_is_lost(
        tmp_path, sim, rules_dir, spawn, pg_url, pg_cluster):
    with HttpSink() as sink:
        cfg = configs(tmp_path, sim, sink, pg_url)
        a, b = a_leads_b_stands_by(cfg, rules_dir, spawn, pg_url, sim)
        sim.push_deltadefi(API_KEY, fill(1))
        assert wait_for(lambda: "fill r1" in sink.titles(), 20)
        pg_cluster.restart()
        sim.push_deltadefi(API_KEY, fill(2))  # while it restarts: the catch-up brings it
        assert wait_for(lambda: settled(pg_url), 40), (a.stderr(), b.stderr())
        assert wait_for(lambda: "fill r2" in sink.titles(), 40), (a.stderr(), b.stderr())
        sim.push_deltadefi(API_KEY, fill(3))
        assert wait_for(lambda: "fill r3" in sink.titles(), 30), (a.stderr(), b.stderr())
        for agent in (a, b):
            agent.signal(signal.SIGTERM)
        assert a.wait() == 0 and b.wait() == 0
        assert "Traceback" not in a.stderr() + b.stderr(), a.stderr() + b.stderr()
    titles = [t for t in sink.titles() if not t.startswith("alertd on")]
    assert Counter(titles) == Counter(["fill r1", "fill r2", "fill r3"])


def test_status_check_names_a_missing_leader_as_critical(pg_url):
    db = connect_postgres(StateURL(pg_url))
    from alertd.storage.postgres import migrate
    migrate(db)  # type: ignore[arg-type]
    db.close()
    out = io.StringIO()
    from alertd.cli.status import check
    assert check(StateURL(pg_url), out=out) == 2
    assert "no alertd leads" in out.getvalue()


def test_a_standby_under_systemd_is_ready_and_pets_the_watchdog(tmp_path, sim, rules_dir,
                                                                spawn, pg_url):
    """Type=notify with WatchdogSec=: a standby waiting for the lock must not be killed for
    never starting, nor for never answering the watchdog."""
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(20)
    with HttpSink() as sink:
        cfg = configs(tmp_path, sim, sink, pg_url)
        a = spawn(cfg["a"], rules_dir)
        assert wait_for(lambda: who_leads(pg_url)[0] == "a", 30), a.stderr()
        b = spawn(cfg["b"], rules_dir, {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "3000000"})
        got = [listener.recv(4096).decode() for _ in range(3)]
        assert got[0].startswith("READY=1\nSTATUS=standby (b)")
        assert got[1:] == ["WATCHDOG=1", "WATCHDOG=1"]
        assert who_leads(pg_url)[0] == "a"
        for agent in (a, b):
            agent.signal(signal.SIGTERM)
        assert a.wait() == 0 and b.wait() == 0
    listener.close()
