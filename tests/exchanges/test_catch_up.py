"""Baseline and catch-up over REST, end to end: simulator sockets + REST, a real webhook."""

from __future__ import annotations

import time

from alertd.sim.frames import dd_balance, dd_order, sx_trade
from tests.conftest import API_KEY, USER, agent_config, running
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
            assert sim.wait_ready(DD)  # connected, so caught up (the catch-up comes first)
            assert sim.wait_ready(SPOT, channels=4)  # desk/spot is watched from now on
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
                                     "fill main r2 7 caught_up=yes", "low ada 120",
                                     "fill desk vBTC_vUSDC:55 0.1 caught_up=yes"])
    assert any(p.startswith("/accounts/trade-orders") for p in sim.rest.requests)
    assert any(p.endswith(f"/api/v1/spot/accounts/{USER}/trades") for p in sim.rest.requests)
    assert sim.contract_violations == []


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
            dd = next(s for s in agent.streams if s.source.exchange == "deltadefi")
            assert wait_for(lambda: dd.session.catch_up_due is None, 10)  # every pair read
            sim.rest.failing = True  # a later outage of REST is reported again
            sim.drop(DD)
            assert wait_for(lambda: sink.titles().count("stream main catch_up_failed") == 2, 10)
        finally:
            agent.stop(timeout=5)
    assert API_KEY not in repr(sink.posts)
    assert sim.contract_violations == []


def test_sodex_rest_rows_in_the_sdk_s_long_keys_become_the_stream_s_pushes(tmp_path):
    from alertd.domain.observations import Source
    from alertd.exchanges.sodex.rest import balance_row, order_row, position_row, trade_row
    from alertd.rules.load import load_rules
    from alertd.runtime.pipeline import Pipeline
    from alertd.storage.store import Store
    from tests.conftest import write

    now = int(time.time() * 1000)  # wall clock ok: the agent's gap window is real time
    order = {"orderID": 7001, "clOrdID": "c-1", "symbol": "vBTC_vUSDC", "side": "BUY",
             "type": "LIMIT", "timeInForce": "GTC", "price": "60000", "origQty": "0.5",
             "executedQty": "0.2", "executedValue": "12000", "status": "PARTIALLY_FILLED",
             "createdAt": now - 5000, "updatedAt": now}
    trade = {"symbol": "vBTC_vUSDC", "tradeID": 901, "orderID": 7001, "clOrdID": "c-1",
             "side": "BUY", "price": "60000", "quantity": "0.2", "fee": "0.6",
             "feeCoin": "vUSDC", "time": now, "isMaker": False}
    assert order_row(order) == {"i": 7001, "c": "c-1", "s": "vBTC_vUSDC", "S": "BUY",
                                "o": "LIMIT", "f": "GTC", "p": "60000", "q": "0.5",
                                "X": "PARTIALLY_FILLED", "z": "0.2", "E": now}
    assert trade_row(trade)["t"] == 901 and trade_row(trade)["m"] is False
    assert balance_row({"id": 0, "coin": "vUSDC", "total": "900", "locked": "100"}, "spot") == {
        "i": 0, "a": "vUSDC", "t": "900", "l": "100"}
    assert balance_row({"id": 0, "coin": "vUSDC", "total": "900", "locked": "0"}, "perps") == {
        "i": 0, "a": "vUSDC", "wb": "900"}
    assert position_row({"symbol": "BTC-USD", "quantity": "0.1", "entryPrice": "60000",
                         "positionSide": "LONG", "marginMode": "isolated", "margin": "600"}) \
        == {"s": "BTC-USD", "sz": "0.1", "ep": "60000", "ps": "LONG", "m": "isolated",
            "iw": "600"}
    write(tmp_path / "rules" / "r.yaml", "rules:\n  - name: fills\n    on: fill\n"
          "    notify: [t]\n    group_wait: 0\n    title: '{trade_id} {qty} {caught_up}'\n")
    p = Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(tmp_path / "s.db"))
    src = Source("desk", "sodex", "spot")
    earlier = {**order, "orderID": 6000, "status": "FILLED", "updatedAt": now - 60_000}
    p.catch_up(src, [{"channel": "accountOrderUpdate", "type": "update",
                      "data": [order_row(earlier)]}],
                time.time() - 60)  # wall clock ok; known from here on
    alerts = p.catch_up(src, [
        {"channel": "accountOrderUpdate", "type": "update", "data": [order_row(order)]},
        {"channel": "accountTrade", "type": "update", "data": [trade_row(trade)]}],
        time.time())  # wall clock ok: as the agent's catch-up stamps it
    assert [a.title for a in alerts] == ["vBTC_vUSDC:901 0.2 yes"]
    assert sum(p.drops.counts.values()) == 0


def test_a_stream_that_only_answers_pings_hides_no_fill_for_long(tmp_path, sim, rules_dir):
    """The socket stays up and answers its pings, but the exchange says nothing on it: the
    fill made meanwhile is visible over REST, and the paced reconciliation finds it."""
    import dataclasses

    from tests.conftest import FAST

    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        settings = dataclasses.replace(FAST, reconcile_every=1.0)
        with running(cfg, rules_dir, settings=settings):
            assert sim.wait_ready(DD)
            assert caught_up(sim, "/trade-orders")
            sim.push_deltadefi(API_KEY, dd_order("o9", "partially_filled", [("r9", "3")], "3"),
                               live=False)  # on the account, never on the socket
            assert wait_for(lambda: "fill main r9 3 caught_up=yes" in sink.titles(), 15), \
                sink.titles()
    assert sink.titles().count("fill main r9 3 caught_up=yes") == 1


def test_a_sodex_stream_silent_beyond_its_promise_is_reported_and_read_over_rest(
        tmp_path, sim, rules_dir, caplog):
    """SoDEX pushes every block; a socket that answers pings but sends no data for
    `silent_after` is reported `silent` (status, log) and read over REST at once, so the fill
    made meanwhile is said without waiting for the paced reconciliation. DeltaDeFi promises
    nothing while quiet, and its socket is never called silent."""
    import dataclasses
    import io
    import logging

    from alertd.cli.status import WARNING, check
    from tests.conftest import FAST

    caplog.set_level(logging.INFO, logger="alertd")
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        settings = dataclasses.replace(FAST, silent_after=1.5, reconcile_every=0,
                                       idle_timeout=60)
        with running(cfg, rules_dir, settings=settings) as agent:
            spot = next(s for s in agent.streams if s.source.exchange == "sodex")
            dd = next(s for s in agent.streams if s.source.exchange == "deltadefi")
            assert sim.wait_ready(SPOT, channels=4)
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(41, "0.2"), live=False)
            assert wait_for(lambda: spot.state == "silent", 10)
            caught = "fill desk vBTC_vUSDC:41 0.2 caught_up=yes"
            assert wait_for(lambda: caught in sink.titles(), 10), sink.titles()
            assert dd.state == "connected"
            agent.save_health()
            out = io.StringIO()
            assert check(tmp_path / "state.db", out=out) == WARNING
            assert "streams connected but sending nothing: desk/spot" in out.getvalue()
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(42, "0.1"))
            assert wait_for(lambda: spot.state == "connected", 10)
    said = [r.getMessage() for r in caplog.records if "no data for" in r.getMessage()]
    assert len(said) == 1 and "although the exchange pushes every block" in said[0]
    assert any("sends data again" in r.getMessage() for r in caplog.records)
