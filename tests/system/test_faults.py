"""Fault injection: the agent's worst days, against real servers on 127.0.0.1.

Processes are killed for real (SIGKILL, SIGTERM, SIGHUP), servers go down and come back,
sockets go silent; every test is bounded by timeouts and stops by itself.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import time
from pathlib import Path

from alertd.cli.main import main
from alertd.sim.frames import dd_balance, dd_order, sx_trade
from tests.conftest import (
    API_KEY,
    DD_KEY,
    FAST,
    SPOT_KEY,
    USER,
    agent_config,
    build_agent,
    running,
    write,
)
from tests.sinks import BlackHole, HttpSink, RawPeer, SmtpSink, wait_for

DD, SPOT = DD_KEY, SPOT_KEY

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
  - name: streams
    on: stream
    notify: [hook]
    group_wait: 0
    title: "stream {account} {market} {status}"
    message: "{reason}"
"""


def outbox(state: Path) -> dict[str, int]:
    db = sqlite3.connect(state)
    try:
        return dict(db.execute("SELECT status, COUNT(*) FROM outbox GROUP BY status").fetchall())
    finally:
        db.close()


def test_kill_9_with_alerts_pending_then_restart_delivers_each_exactly_once(
        tmp_path, sim, rules_dir, spawn):
    with HttpSink() as sink:
        sink.fail_next = 10**6
        cfg = agent_config(tmp_path, sim, {"hook": sink.url})
        first = spawn(cfg, rules_dir)
        assert sim.wait_ready(DD, timeout=20)
        frames = [dd_order("o1", "partially_filled", [("r1", "5")], "5"),
                  dd_order("o1", "partially_filled", [("r1", "5"), ("r2", "5")], "10"),
                  dd_balance("100")]
        for frame in frames:
            sim.push_deltadefi(API_KEY, frame)
        assert wait_for(lambda: sink.requests >= 3, 20)
        first.proc.kill()  # SIGKILL: no shutdown code runs
        first.wait()
        assert outbox(tmp_path / "state.db") == {"pending": 3}
        sink.fail_next = 0
        second = spawn(cfg, rules_dir)
        assert sim.wait_ready(DD, connects=2, timeout=20)
        for frame in frames:  # the exchange restates what it had
            sim.push_deltadefi(API_KEY, frame)
        assert wait_for(lambda: len(sink.posts) >= 3, 20)
        wait_for(lambda: False, 1)
        second.signal(signal.SIGTERM)
        assert second.wait() == 0
    assert sorted(sink.titles()) == ["fill r1", "fill r2", "low 100"]
    assert outbox(tmp_path / "state.db") == {"delivered": 3}


def test_sigterm_with_deliveries_pending_exits_0_and_loses_nothing(tmp_path, sim, rules_dir,
                                                                   spawn):
    with HttpSink() as sink:
        sink.fail_next = 10**6
        cfg = agent_config(tmp_path, sim, {"hook": sink.url})
        agent = spawn(cfg, rules_dir)
        assert sim.wait_ready(DD, timeout=20)
        sim.push_deltadefi(API_KEY, dd_balance("100"))
        assert wait_for(lambda: sink.requests >= 1, 20)
        agent.signal(signal.SIGTERM)
        assert agent.wait(timeout=20) == 0  # the bound: 10 s for sends in flight
        assert outbox(tmp_path / "state.db") == {"pending": 1}
        assert "alertd stopped" in agent.stderr()
        sink.fail_next = 0
        again = spawn(cfg, rules_dir)
        assert wait_for(lambda: sink.posts, 20)
        again.signal(signal.SIGINT)
        assert again.wait() == 0
    assert sink.titles() == ["low 100"]


def test_sighup_with_a_broken_rule_keeps_the_old_rules_and_says_so(tmp_path, sim, rules_dir,
                                                                     spawn):
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url})
        agent = spawn(cfg, rules_dir)
        assert sim.wait_ready(DD, timeout=20)
        rule_file = rules_dir / "r.yaml"
        good = rule_file.read_text()
        rule_file.write_text(good.replace('title: "fill {trade_id}"', 'title: "{nope}"'))
        agent.signal(signal.SIGHUP)
        assert wait_for(lambda: "alertd: reload failed" in sink.titles(), 20)
        failure = next(p for p in sink.posts if p["title"] == "alertd: reload failed")
        assert f"{rule_file}:6: rule 'fill': title: unknown field '{{nope}}'" in failure["message"]
        sim.push_deltadefi(API_KEY, dd_order("o1", "partially_filled", [("r1", "5")], "5"))
        assert wait_for(lambda: "fill r1" in sink.titles(), 20)  # the old rules still work
        rule_file.write_text(good.replace('title: "fill {trade_id}"', 'title: "new {trade_id}"'))
        agent.signal(signal.SIGHUP)
        assert wait_for(lambda: "reloaded" in agent.stderr(), 20)
        sim.push_deltadefi(API_KEY, dd_order("o1", "partially_filled",
                                             [("r1", "5"), ("r2", "5")], "10"))
        assert wait_for(lambda: "new r2" in sink.titles(), 20)
        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0


def test_smtp_down_then_up_gets_the_mail_once(tmp_path, sim, rules_dir):
    smtp = SmtpSink()  # not started: the port refuses connections
    with HttpSink() as hook:
        cfg = agent_config(tmp_path, sim, {"hook": hook.url, "mail": smtp.url})
        write(rules_dir / "mail.yaml", "rules:\n  - name: mail\n    on: balance\n"
              "    when: {free: {lt: 500}}\n    notify: [mail]\n    group_wait: 0\n"
              "    title: \"mail {free}\"\n")
        with running(cfg, rules_dir) as agent:
            assert sim.wait_ready(DD)
            sim.push_deltadefi(API_KEY, dd_balance("100"))
            assert wait_for(lambda: agent.workers["mail"].failures >= 1, 10)
            with SmtpSink(port=smtp.port) as up:
                assert wait_for(lambda: up.messages, 20)
                wait_for(lambda: False, 1)
                assert len(up.messages) == 1 and "Subject: mail 100" in up.messages[0]
            assert hook.titles() == ["low 100"]  # the other notifier was not held up


def test_silent_sodex_socket_is_replaced_by_the_watchdog(tmp_path, sim, rules_dir, caplog):
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        with running(cfg, rules_dir):
            assert sim.wait_ready(SPOT, channels=4)
            sim.silent.add(SPOT)  # acks given; from now on no pong, no data
            assert sim.wait(lambda: sim.connects[SPOT] >= 2, FAST.idle_timeout + 10)
            sim.silent.discard(SPOT)
            assert sim.wait_ready(SPOT, connects=2, channels=4)
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(77, "0.1"))
            assert wait_for(lambda: "fill vBTC_vUSDC:77" in sink.titles(), 10)
    assert any("no frame for" in r.getMessage() for r in caplog.records)


def test_server_that_accepts_then_says_nothing_is_left_and_reported(tmp_path, sim, rules_dir):
    with BlackHole() as hole, HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        cfg.write_text(cfg.read_text().replace(sim.deltadefi_url, hole.url))
        with running(cfg, rules_dir):
            assert wait_for(lambda: hole.accepted >= 2, FAST.ack_timeout * 2 + 10)
            assert wait_for(lambda: "stream main spot disconnected" in sink.titles(), 20)
            post = next(p for p in sink.posts if p["title"] == "stream main spot disconnected")
            assert "main (spot) unreachable for" in post["message"]
            assert "stream main spot connected" not in sink.titles()


def test_garbage_between_valid_frames_over_real_sockets(tmp_path, sim, rules_dir):
    import random

    rnd = random.Random(20261122)
    garbage: list[str | bytes] = []
    valid = dd_order("o1", "partially_filled", [("r1", "5")], "5")
    text = __import__("json").dumps(valid)
    for i in range(1500):
        kind = i % 5
        if kind == 0:
            garbage.append(rnd.randbytes(rnd.randint(0, 300)))
        elif kind == 1:
            garbage.append(text[: rnd.randint(0, len(text) - 1)])
        elif kind == 2:
            garbage.append(text.replace('"5"', rnd.choice(['"x"', "null", "[]", '{"a":1}'])))
        elif kind == 3:
            sub = rnd.choice(["dlta_points", "order_info", "", "nonsense"])  # payload missing
            garbage.append(f'{{"type":"Account","sub_type":"{sub}"}}')
        else:
            garbage.append(b"\xff\xfe" + rnd.randbytes(20))
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        with running(cfg, rules_dir) as agent:
            assert sim.wait_ready(DD) and sim.wait_ready(SPOT, channels=4)
            expected = []
            for n, chunk in enumerate(range(0, len(garbage), 300)):
                for g in garbage[chunk:chunk + 300]:
                    sim.send_raw(DD, g)
                    sim.send_raw(SPOT, g, "accountTrade")
                sim.push_sodex(USER, "spot", "accountTrade", sx_trade(1000 + n, "0.1"))
                expected.append(f"fill vBTC_vUSDC:{1000 + n}")
            sim.push_deltadefi(API_KEY, valid)
            expected.append("fill r1")
            assert wait_for(lambda: all(t in sink.titles() for t in expected), 30)
            dropped = sum(agent.pipeline.drops.counts.values())
            assert dropped >= 2 * 1500 - 10
            assert all(s.connects == 1 for s in agent.streams)  # no stream was hurt
    fills = [t for t in sink.titles() if t.startswith("fill")]
    assert sorted(fills) == sorted(expected)
    garbled = [t for t in sink.titles() if t.endswith("invalid_messages")]
    assert sorted(garbled) == ["stream desk spot invalid_messages",
                               "stream main spot invalid_messages"]  # once an hour at most


def test_an_alert_given_up_on_is_reported_once_through_the_other_notifiers(tmp_path, sim,
                                                                            rules_dir):
    with HttpSink() as broken, HttpSink() as other:
        broken.fail_next = 10**6
        cfg = agent_config(tmp_path, sim, {"hook": broken.url, "other": other.url})
        cfg.write_text(cfg.read_text() + "delivery_max_age: 1\n")
        with running(cfg, rules_dir):
            assert sim.wait_ready(DD)
            sim.push_deltadefi(API_KEY, dd_balance("100"))
            assert wait_for(lambda: other.posts, 15)
            wait_for(lambda: False, 1)
    assert other.titles() == ["alertd gave up on an alert for hook"]
    assert "'low 100' (rule low) could not be delivered to hook" in other.posts[0]["message"]
    assert outbox(tmp_path / "state.db") == {"dead": 1, "delivered": 1}


def test_systemd_notify_ready_watchdog_and_stopping(tmp_path, sim, rules_dir, spawn):
    address = str(tmp_path / "notify.sock")
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(address)
    listener.settimeout(20)
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url})
        agent = spawn(cfg, rules_dir, {"NOTIFY_SOCKET": address, "WATCHDOG_USEC": "3000000"})
        got = [listener.recv(4096).decode() for _ in range(2)]
        assert got[0].startswith("READY=1")
        assert got[1] == "WATCHDOG=1"
        agent.signal(signal.SIGTERM)
        messages = []
        while "STOPPING=1" not in messages:
            messages.append(listener.recv(4096).decode())
        assert agent.wait() == 0
    listener.close()


def test_status_shows_streams_outbox_and_rejected_frames(tmp_path, sim, rules_dir, capsys):
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        with running(cfg, rules_dir) as agent:
            assert sim.wait_ready(DD)
            sim.push_deltadefi(API_KEY, dd_balance("100"))
            sim.send_raw(DD, "{not json")
            assert wait_for(lambda: sink.posts, 10)
            assert wait_for(lambda: sum(agent.pipeline.drops.counts.values()) == 1, 10)
            agent.save_health()
    rc = main(["status", "--config", str(cfg)])
    out = capsys.readouterr().out
    assert rc == 0
    assert "main/spot" in out and "deltadefi" in out and "stopped" in out
    assert "hook                     pending 0      delivered 1" in out
    assert "main/spot                not_json        1" in out
    assert "alertd: not running" in out


def test_world_readable_config_with_a_literal_secret_is_warned_about(tmp_path, sim, rules_dir,
                                                                      capsys):
    cfg = agent_config(tmp_path, sim, {"hook": "json://127.0.0.1:9/"}, api_key="sk-literal-1")
    write(rules_dir / "r.yaml", RULES)
    cfg.chmod(0o644)
    assert main(["check", "--rules", str(rules_dir), "--config", str(cfg)]) == 0
    err = capsys.readouterr().err
    assert f"warning: {cfg} is readable by every user and holds secrets (line 4)" in err
    assert "sk-literal-1" not in err
    cfg.chmod(0o600)
    assert main(["check", "--rules", str(rules_dir), "--config", str(cfg)]) == 0
    assert "warning" not in capsys.readouterr().err


def test_reload_picks_up_new_notifiers_and_stream_settings(tmp_path, sim, rules_dir):
    with HttpSink() as first, HttpSink() as second:
        cfg = agent_config(tmp_path, sim, {"hook": first.url}, markets="[spot]")
        agent = build_agent(cfg, rules_dir)
        agent.start()
        try:
            assert sim.wait_ready(DD)
            cfg.write_text(cfg.read_text().replace(f'hook: "{first.url}"',
                                                   f'hook: "{second.url}"')
                           .replace("stream_down_after: 1", "stream_down_after: 7"))
            assert agent.reload()
            assert agent.settings.down_after == 7 and all(
                s.settings.down_after == 7 for s in agent.streams)
            assert sim.wait_ready(DD, connects=2)  # streams rebuilt with the new settings
            sim.push_deltadefi(API_KEY, dd_balance("100"))
            assert wait_for(lambda: second.posts, 10)
        finally:
            agent.stop(timeout=5)
    assert first.posts == [] and second.titles() == ["low 100"]


def test_reload_replaces_only_the_sockets_of_accounts_that_changed(tmp_path, sim, rules_dir):
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        agent = build_agent(cfg, rules_dir)
        agent.start()
        try:
            assert sim.wait_ready(DD) and sim.wait_ready(SPOT, channels=4)
            kept = list(agent.streams)
            write(rules_dir / "r.yaml", RULES.replace('title: "low {free}"',
                                                      'title: "ADA low: {free}"'))
            assert agent.reload()
            assert agent.streams == kept  # rules only: no socket touched
            cfg.write_text(cfg.read_text().replace("markets: [spot]", "markets: [spot, perps]"))
            assert agent.reload()
            dd = next(s for s in agent.streams if s.source.exchange == "deltadefi")
            assert dd is kept[0] and len(agent.streams) == 3
            assert sim.wait_ready(SPOT, connects=2, channels=4)
            sim.push_deltadefi(API_KEY, dd_balance("100"))
            assert wait_for(lambda: "ADA low: 100" in sink.titles(), 10)
            assert sim.connects[DD] == 1
        finally:
            agent.stop(timeout=5)


def test_status_can_be_pointed_at_the_state_file_directly(tmp_path, capsys):
    from alertd.storage.store import Store

    Store(tmp_path / "state.db").close()
    assert main(["status", "--state", str(tmp_path / "state.db")]) == 0
    assert "streams:\n  none recorded yet" in capsys.readouterr().out
    assert main(["status", "--state", str(tmp_path / "missing.db")]) == 1


def _catches(pid: int, signum: int) -> bool:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("SigCgt:"):
            return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    return False


def test_sighup_while_starting_is_a_reload_once_started_not_an_exit(tmp_path, sim, rules_dir,
                                                                    spawn):
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url})
        agent = spawn(cfg, rules_dir)
        pid = agent.proc.pid
        assert wait_for(lambda: agent.proc.poll() is not None or _catches(pid, signal.SIGHUP),
                        20, interval=0.001)
        state = str(tmp_path / "state.db")
        opened = [os.readlink(f) for f in Path(f"/proc/{pid}/fd").iterdir()
                  if os.path.exists(f)]
        assert state not in opened  # taken before the slow part of starting, not after it
        agent.signal(signal.SIGHUP)
        assert sim.wait_ready(DD, timeout=20)
        assert wait_for(lambda: "reloaded" in agent.stderr(), 20), agent.stderr()
        assert agent.proc.poll() is None
        agent.signal(signal.SIGTERM)
        assert agent.wait() == 0


def test_a_reload_while_a_send_is_in_flight_sends_that_alert_once(tmp_path, sim, rules_dir):
    with HttpSink() as slow, HttpSink() as other:
        slow.answer_after = 2.0
        cfg = agent_config(tmp_path, sim, {"hook": slow.url}, markets="[spot]")
        agent = build_agent(cfg, rules_dir)
        agent.reload_grace = 0.3  # shorter than the send in flight, as 10 s is for a slow one
        agent.start()
        try:
            assert sim.wait_ready(DD)
            sim.push_deltadefi(API_KEY, dd_balance("100"))
            assert wait_for(lambda: slow.requests == 1, 10)  # taken, not yet answered
            text = cfg.read_text().replace("notifiers:", f'notifiers:\n  other: "{other.url}"')
            cfg.write_text(text)
            assert agent.reload()
            assert wait_for(lambda: outbox(tmp_path / "state.db").get("delivered") == 1, 15)
        finally:
            agent.stop(timeout=5)
    assert slow.requests == 1 and slow.titles() == ["low 100"]


def test_sigterm_with_a_notifier_dripping_its_answer_exits_within_systemd_s_stop_timeout(
        tmp_path, sim, rules_dir, spawn):
    def drip(conn) -> None:
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        while True:
            conn.sendall(b"X")
            time.sleep(0.5)

    with RawPeer(drip) as peer:
        port = peer.sock.getsockname()[1]
        cfg = agent_config(tmp_path, sim, {"hook": f"json://127.0.0.1:{port}/"},
                           markets="[spot]")
        agent = spawn(cfg, rules_dir)
        assert sim.wait_ready(DD, timeout=20)
        sim.push_deltadefi(API_KEY, dd_balance("100"))
        assert wait_for(lambda: peer.accepted >= 1, 20)  # the send is in flight, dripping
        agent.signal(signal.SIGTERM)
        assert agent.wait(timeout=25) == 0  # TimeoutStopSec=30: systemd would SIGKILL
    assert "stays pending and is sent after the next start" in agent.stderr()
    assert outbox(tmp_path / "state.db").get("pending") == 1
