"""The whole agent against the simulated exchange over real WebSockets, delivering to real
HTTP and SMTP servers on 127.0.0.1."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from alertd.sim.frames import dd_balance, dd_order, dd_points, sx_balances, sx_order, sx_trade
from alertd.sim.simulator import deltadefi_key, sodex_key
from tests.conftest import API_KEY, FAST, USER, agent_config, build_agent, running
from tests.sinks import HttpSink, wait_for

ROOT = Path(__file__).resolve().parents[2]
DD, SPOT, PERPS = deltadefi_key(API_KEY), sodex_key(USER, "spot"), sodex_key(USER, "perps")

RULES = """
rules:
  - name: fill
    on: fill
    notify: [hook]
    group_wait: 0
    title: "fill {account} {trade_id} {filled_qty}/{order_qty} {complete}"
  - name: low-ada
    on: balance
    when: {asset: ada, free: {lt: 500}}
    notify: [hook, mail]
    group_wait: 0
    title: "low {asset} {free}"
  - name: league
    on: league
    notify: [hook]
    group_wait: 0
    title: "league {direction} {league}"
  - name: streams
    on: stream
    notify: [hook]
    group_wait: 0
    title: "stream {account} {market} {status}"
    message: "{reason}"
"""


@pytest.fixture
def agent_factory(tmp_path, sim, http_sink, smtp_sink, rules_dir):
    agents = []

    def make(**kw):
        cfg = agent_config(tmp_path, sim, {"hook": http_sink.url, "mail": smtp_sink.url}, **kw)
        agent = build_agent(cfg, rules_dir)
        agents.append(agent)
        agent.start()
        return agent

    yield make
    for agent in agents:
        if not agent._stop.is_set():
            agent.stop(timeout=5)


def agent_logs(caplog) -> list[str]:
    """Everything alertd's side logged, unscrubbed; the simulated exchange's server is excluded
    (it received the key, as the real exchange does)."""
    return [r.getMessage() + (str(r.exc_info[1]) if r.exc_info else "")
            for r in caplog.records if not r.name.startswith("websockets")]


def ready(sim, connects: int = 1) -> bool:
    return (sim.wait_ready(DD, connects) and sim.wait_ready(SPOT, connects, channels=4)
            and sim.wait_ready(PERPS, connects, channels=5))


def test_fills_on_both_exchanges_once_each_to_http_and_low_balance_to_smtp(
        agent_factory, sim, http_sink, smtp_sink):
    agent_factory()
    assert ready(sim)
    partial = dd_order("o1", "partially_filled", [("r1", "800")], "800")
    sim.push_deltadefi(API_KEY, partial)
    sim.push_deltadefi(API_KEY, partial)
    sim.push_deltadefi(API_KEY, dd_order("o1", "closed", [("r1", "800"), ("r2", "1200")], "2000"))
    sim.push_sodex(USER, "spot", "accountOrderUpdate", sx_order("NEW", "0"))
    sim.push_sodex(USER, "spot", "accountTrade", sx_trade(11, "0.2"))
    sim.push_sodex(USER, "spot", "accountTrade", sx_trade(11, "0.2"))
    sim.push_sodex(USER, "spot", "accountTrade", sx_trade(12, "0.3"))
    sim.push_deltadefi(API_KEY, dd_balance("420"))
    assert wait_for(lambda: len(http_sink.posts) >= 5 and smtp_sink.messages, 15)
    assert wait_for(lambda: False, 0.5) is False  # give a duplicate time to show up
    assert sorted(http_sink.titles()) == sorted([
        "fill main r1 800/2000 no", "fill main r2 2000/2000 yes",
        "fill desk vBTC_vUSDC:11 0.2/0.5 no", "fill desk vBTC_vUSDC:12 0.5/0.5 yes",
        "low ada 420"])
    assert len(smtp_sink.messages) == 1 and "Subject: low ada 420" in smtp_sink.messages[0]
    assert all(p["type"] == "info" for p in http_sink.posts)


def test_sodex_subscribes_every_channel_checks_acks_and_pings_when_idle(agent_factory, sim):
    agent = agent_factory()
    assert ready(sim)
    subs = [(k, m["params"]["channel"]) for k, m in sim.received
            if isinstance(m, dict) and m.get("op") == "subscribe"]
    assert sorted(c for k, c in subs if k == SPOT) == sorted(
        ["accountState", "accountUpdate", "accountOrderUpdate", "accountTrade"])
    assert sorted(c for k, c in subs if k == PERPS) == sorted(
        ["accountState", "accountUpdate", "accountOrderUpdate", "accountTrade", "accountEvent"])
    assert all(m["params"]["user"] == USER for k, m in sim.received
               if isinstance(m, dict) and m.get("op") == "subscribe")
    # idle longer than idle_timeout (3 s): pings answered by pongs keep the sockets up
    assert sim.wait(lambda: sum(1 for k, m in sim.received if m == {"op": "ping"}) >= 4, 5)
    wait_for(lambda: False, FAST.idle_timeout + 0.5)
    assert sim.connects[SPOT] == 1 and sim.connects[PERPS] == 1
    assert all(s.connects == 1 for s in agent.streams)


def test_refused_subscription_is_a_rejected_stream_event(agent_factory, sim, http_sink):
    sim.refuse_channels.add("accountTrade")
    agent_factory(markets="[spot]")
    assert wait_for(lambda: "stream desk spot rejected" in http_sink.titles(), 10)
    post = next(p for p in http_sink.posts if p["title"] == "stream desk spot rejected")
    assert "SoDEX refused accountTrade for account desk (spot)" in post["message"]


def test_league_promotion_and_abrupt_drop_heal_without_duplicates(agent_factory, sim,
                                                                   http_sink):
    agent_factory()
    assert ready(sim)
    sim.snapshots[(SPOT, "accountUpdate")] = sx_balances("5000")
    sim.push_deltadefi(API_KEY, dd_points("100", "silver"))
    sim.push_deltadefi(API_KEY, dd_points("300", "gold"))
    sim.push_sodex(USER, "spot", "accountTrade", sx_trade(21, "0.1"))
    assert wait_for(lambda: len(http_sink.posts) >= 2, 10)
    sim.drop(SPOT)
    sim.drop(DD)
    assert sim.wait_ready(SPOT, connects=2, channels=4) and sim.wait_ready(DD, connects=2)
    # after the reconnect the exchange restates what it had: nothing is new
    sim.push_deltadefi(API_KEY, dd_points("300", "gold"))
    sim.push_sodex(USER, "spot", "accountTrade", sx_trade(21, "0.1"))
    sim.push_sodex(USER, "spot", "accountTrade", sx_trade(22, "0.1"))
    assert wait_for(lambda: len(http_sink.posts) >= 3, 10)
    wait_for(lambda: False, 0.5)
    assert sorted(http_sink.titles()) == sorted([
        "league up gold", "fill desk vBTC_vUSDC:21 0.1/- no",
        "fill desk vBTC_vUSDC:22 0.2/- no"])


def test_restart_with_the_same_state_file_realerts_nothing(agent_factory, sim, http_sink):
    first = agent_factory()
    assert ready(sim)
    frames = [dd_order("o9", "partially_filled", [("r1", "10")], "10"), dd_balance("100"),
              dd_points("50", "bronze"), dd_points("80", "silver")]
    for frame in frames:
        sim.push_deltadefi(API_KEY, frame)
    assert wait_for(lambda: len(http_sink.posts) == 3, 10)
    first.stop(timeout=5)
    agent_factory()
    assert ready(sim, connects=2)
    for frame in (frames[0], frames[1], frames[3]):
        sim.push_deltadefi(API_KEY, frame)
    sim.push_deltadefi(API_KEY, dd_order("o9", "closed", [("r1", "10"), ("r2", "1990")], "2000"))
    assert wait_for(lambda: len(http_sink.posts) == 4, 10)
    wait_for(lambda: False, 0.5)
    assert http_sink.titles()[3:] == ["fill main r2 2000/2000 yes"]


def test_bad_api_key_is_rejected_once_without_a_reconnect_storm_and_never_logged(
        agent_factory, sim, http_sink, caplog):
    caplog.set_level(logging.DEBUG)
    agent_factory(api_key="sk-wrong-SECRET-9999")
    assert wait_for(lambda: "stream main spot rejected" in http_sink.titles(), 10)
    wait_for(lambda: False, 3)
    attempts = sim.handshakes[deltadefi_key("sk-wrong-SECRET-9999")]
    assert 1 <= attempts <= 4  # refused_backoff is 2 s (x0.75..1.25): no storm
    post = next(p for p in http_sink.posts if p["title"] == "stream main spot rejected")
    assert post["message"] == "DeltaDeFi refused the API key for account main (HTTP 401)"
    everything = "\n".join([*agent_logs(caplog), *(str(p) for p in http_sink.posts)])
    assert "sk-wrong-SECRET-9999" not in everything
    assert "api_key=" not in everything or "api_key=***" in everything


def test_api_key_never_appears_in_logs_or_alerts(agent_factory, sim, http_sink, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    agent = agent_factory()
    assert ready(sim)
    sim.drop(DD)
    assert sim.wait_ready(DD, connects=2)
    sim.refuse("deltadefi", 2.5)
    sim.drop(DD)
    assert wait_for(lambda: "stream main spot connected" in http_sink.titles(), 10)
    agent.stop(timeout=5)
    raw = "\n".join(agent_logs(caplog))
    assert "main/spot: connected to ws://127.0.0.1" in raw
    assert API_KEY not in raw
    assert API_KEY not in str(http_sink.posts)
    assert "/accounts/stream?*** " not in raw and "/accounts/stream?***" in raw


def test_cli_runs_the_example_rules_against_the_simulator_and_stops_on_sigterm(
        tmp_path, sim, http_sink, smtp_sink):
    cfg = agent_config(tmp_path, sim, {"trading": http_sink.url, "phone": http_sink.url,
                                       "email": smtp_sink.url})
    env = {**os.environ, "TEST_DD_KEY": API_KEY}
    proc = subprocess.Popen([sys.executable, "-m", "alertd", "--rules", str(ROOT / "rules"),
                             "--config", str(cfg)], stderr=subprocess.PIPE, text=True, env=env)
    try:
        assert ready(sim)
        sim.push_deltadefi(API_KEY, dd_balance("1000"))
        sim.push_deltadefi(API_KEY, dd_order("o1", "partially_filled", [("r1", "800")], "800"))
        sim.push_deltadefi(API_KEY, dd_balance("450"))
        assert wait_for(lambda: len(http_sink.posts) >= 2 and smtp_sink.messages, 20)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert sorted(http_sink.titles()) == ["Low ADA on main", "buy ADAUSDM: 800 @ 0.93"]
    assert "Subject: Low ADA on main" in smtp_sink.messages[0]
    assert "main/spot: connected" in err and "alert low-ada" in err
    assert API_KEY not in err


def test_webhook_failing_then_recovering_gets_the_alert_exactly_once(agent_factory, sim,
                                                                      http_sink, smtp_sink):
    agent = agent_factory()
    assert ready(sim)
    http_sink.fail_next = 2
    sim.push_deltadefi(API_KEY, dd_balance("100"))
    assert wait_for(lambda: http_sink.posts, 15)
    wait_for(lambda: False, 0.5)
    assert http_sink.titles() == ["low ada 100"] and http_sink.requests == 3
    counts = agent.workers["hook"].outbox.counts()
    assert counts["hook"] == {"pending": 0, "delivered": 1, "folded": 0, "dead": 0}
    assert wait_for(lambda: smtp_sink.messages, 10)  # the other notifier was never held up


def test_retry_delays_grow_from_one_second_to_five_minutes_with_jitter():
    from alertd.delivery.worker import retry_delay

    assert [retry_delay(n, rng=lambda: 0.5) for n in (0, 1, 2, 8, 9, 30)] == [
        1.0, 2.0, 4.0, 256.0, 300.0, 300.0]
    assert retry_delay(3, rng=lambda: 0.0) == 4.0 and retry_delay(3, rng=lambda: 1.0) == 12.0


def test_one_url_of_a_notifier_failing_is_retried_alone_the_other_gets_one_copy(
        tmp_path, sim, rules_dir):
    with HttpSink() as flaky, HttpSink() as steady:
        cfg = agent_config(tmp_path, sim, {"hook": [flaky.url, steady.url],
                                           "mail": steady.url}, markets="[spot]")
        flaky.fail_next = 4
        with running(cfg, rules_dir) as agent:
            assert sim.wait_ready(deltadefi_key(API_KEY))
            sim.push_deltadefi(API_KEY, dd_balance("100"))
            assert wait_for(lambda: flaky.posts, 40)
            wait_for(lambda: False, 0.5)
            counts = agent.workers["hook"].outbox.counts()["hook"]
        assert flaky.requests == 5 and flaky.titles() == ["low ada 100"]
        assert steady.titles().count("low ada 100") == 2  # once for hook, once for mail
        assert counts == {"pending": 0, "delivered": 2, "folded": 0, "dead": 0}
