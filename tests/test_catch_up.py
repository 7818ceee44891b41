"""Baseline and catch-up over REST, end to end: simulator sockets + REST, a real webhook."""

from __future__ import annotations

from tests.conftest import API_KEY, USER, agent_config, running
from tests.frames import dd_balance, dd_order, sx_trade
from tests.sinks import HttpSink, wait_for

DD, SPOT = "deltadefi:" + API_KEY, f"sodex:{USER}:spot"


def caught_up(sim, path: str, times: int = 1) -> bool:
    """The catch-up's last request was answered `times` times (what is pushed after it is
    read live, behind the catch-up)."""
    return wait_for(lambda: sum(p.endswith(path) for p in sim.rest.requests) >= times, 10)

RULES = """
rules:
  - name: fill
    on: fill
    notify: [hook]
    group_wait: 0
    title: "fill {account} {trade_id} {qty} caught_up={caught_up}"
  - name: low-ada
    on: balance
    when: {asset: ada, free: {lt: 500}}
    notify: [hook]
    group_wait: 0
    title: "low ada {free}"
  - name: stream
    on: stream
    notify: [hook]
    group_wait: 0
    title: "stream {account} {status}"
"""


def test_fills_while_stopped_arrive_once_and_a_low_balance_at_start_fires(
        tmp_path, sim, rules_dir):
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        with running(cfg, rules_dir):
            assert caught_up(sim, "/trade-orders")
            sim.push_deltadefi(API_KEY, dd_order("o1", "partially_filled", [("r1", "5")], "5"))
            assert wait_for(lambda: "fill main r1 5 caught_up=no" in sink.titles(), 10), sink.posts
        # alertd is down: an order fills further, a SoDEX trade happens, ada runs low
        sim.push_deltadefi(API_KEY, dd_order("o1", "closed", [("r1", "5"), ("r2", "7")], "12",
                                             qty="12"), live=False)
        sim.push_sodex(USER, "spot", "accountTrade", sx_trade(55, "0.1"), live=False)
        sim.push_deltadefi(API_KEY, dd_balance("120"), live=False)
        with running(cfg, rules_dir):
            assert wait_for(lambda: {"fill main r2 7 caught_up=yes", "low ada 120"}
                            <= set(sink.titles()), 15)
            wait_for(lambda: False, 1.0)  # time for a duplicate to show itself
        with running(cfg, rules_dir):  # a third start: everything was already said
            assert sim.wait_ready(DD, connects=3)
            wait_for(lambda: False, 1.5)
    titles = [t for t in sink.titles() if not t.startswith("stream")]
    assert sorted(titles) == sorted(["fill main r1 5 caught_up=no",
                                     "fill main r2 7 caught_up=yes", "low ada 120"])
    assert any(p.startswith("/accounts/trade-orders") for p in sim.rest.requests)
    assert any(p.endswith(f"/api/v1/spot/accounts/{USER}/trades") for p in sim.rest.requests)


def test_sodex_fill_missed_during_a_disconnect_arrives_marked_caught_up(
        tmp_path, sim, rules_dir):
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        with running(cfg, rules_dir):
            assert sim.wait_ready(SPOT, channels=4) and caught_up(sim, "/trades")
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(1, "0.1"))
            assert wait_for(lambda: any("vBTC_vUSDC:1 " in t for t in sink.titles()), 10)
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(2, "0.2"), live=False)
            sim.drop(SPOT)
            assert caught_up(sim, "/trades", 2)
            assert wait_for(lambda: "fill desk vBTC_vUSDC:2 0.2 caught_up=yes"
                            in sink.titles(), 15)
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(2, "0.2"))  # re-sent live
            wait_for(lambda: False, 1.0)
    fills = [t for t in sink.titles() if t.startswith("fill")]
    assert fills == ["fill desk vBTC_vUSDC:1 0.1 caught_up=no",
                     "fill desk vBTC_vUSDC:2 0.2 caught_up=yes"]


def test_rest_down_is_reported_retried_and_never_fatal(tmp_path, sim, rules_dir):
    from tests.conftest import FAST, build_agent

    sim.rest.failing = True
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        import dataclasses

        agent = build_agent(cfg, rules_dir, settings=dataclasses.replace(FAST, catch_up_retry=0.5))
        agent.start()
        try:
            assert wait_for(lambda: "stream main catch_up_failed" in sink.titles(), 10)
            sim.push_deltadefi(API_KEY, dd_order("o1", "open", [("r1", "3")], "3"))
            assert wait_for(lambda: "fill main r1 3 caught_up=no" in sink.titles(), 10)
            sim.rest.failing = False
            assert wait_for(lambda: sink.titles().count("stream main connected") >= 1, 10)
            assert wait_for(lambda: any(p.endswith("/trade-orders") for p in sim.rest.requests), 10)
            sim.rest.failing = True  # a later outage of REST is reported again
            sim.drop(DD)
            assert wait_for(lambda: sink.titles().count("stream main catch_up_failed") == 2, 10)
        finally:
            agent.stop(timeout=5)
    assert API_KEY not in repr(sink.posts)
