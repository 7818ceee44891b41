"""SoDEX as its official SDKs publish it (contracts/sodex/): the simulator is held to the
contracts, and alertd to the simulator: requests as the SDKs make them, history paged,
subscriptions refused one channel at a time, snapshots that close what they no longer list,
liquidations, margin, and the reason an order was rejected.

Issue 15 (SoDEX part). Each test here failed on the code before it."""

from __future__ import annotations

import json
import re
import time
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
import requests

from alertd.domain.account import Account
from alertd.domain.observations import Source
from alertd.exchanges.sodex.rest import SodexCatchUp
from alertd.exchanges.sodex.stream import SodexProtocol
from alertd.rules.load import load_rules
from alertd.runtime.pipeline import Pipeline
from alertd.sim.frames import (
    sx,
    sx_balances,
    sx_liquidation,
    sx_order,
    sx_perps_state,
    sx_perps_update,
    sx_position,
    sx_state_position,
    sx_trade,
)
from alertd.sim.simrest import load_contracts
from alertd.sim.simulator import sodex_key
from alertd.storage.store import Store
from alertd.transport.http import Http
from tests.conftest import USER, agent_config, running, write
from tests.sinks import HttpSink, wait_for

SPOT_KEY, PERPS_KEY = sodex_key(USER, "spot"), sodex_key(USER, "perps")
SPOT, PERPS = Source("desk", "sodex", "spot"), Source("desk", "sodex", "perps")
T0 = 1_790_000_000.0
HEX40 = re.compile(r"^[0-9a-f]{40}$")
OPERATIONS = {"get-accounts-balances", "get-accounts-orders", "get-accounts-positions",
              "get-accounts-orders-history", "get-accounts-trades", "ws-accountState",
              "ws-accountUpdate", "ws-accountOrderUpdate", "ws-accountTrade", "ws-accountEvent",
              "ws-subscribe"}

RULES = """
rules:
  - name: positions
    on: position
    notify: [t]
    group_wait: 0
    title: "{symbol} {side} {size} {margin_mode} caught_up={caught_up}"
    message: "lp {liquidation_price} ur {unrealized_pnl} lev {leverage}"
  - name: losing
    on: position
    when: {unrealized_pnl: {lt: -100}}
    notify: [t]
    group_wait: 0
    title: "losing {symbol} {unrealized_pnl}"
  - name: balances
    on: balance
    notify: [t]
    group_wait: 0
    title: "{asset} {free} (was {previous_free})"
  - name: liquidated
    on: liquidation
    notify: [t]
    group_wait: 0
    title: "liquidated {symbol} {side} {size} {margin_mode}"
    message: "mark {mark_price} liq {liquidation_price} value {account_value}"
  - name: margin
    on: margin
    when: {margin_ratio: {gte: 0.8}}
    resolved: true
    notify: [t]
    group_wait: 0
    title: "margin {margin_ratio}"
    message: "value {account_value} available {available_margin} used {used_margin}"
  - name: orders
    on: order
    notify: [t]
    group_wait: 0
    title: "order {order_id} {status} {exec_type}"
    message: "{reason}"
  - name: fills
    on: fill
    notify: [t]
    group_wait: 0
    title: "fill {trade_id} {qty} caught_up={caught_up}"
"""


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pipeline(tmp_path: Path, clock: Clock) -> Pipeline:
    write(tmp_path / "rules" / "r.yaml", RULES)
    return Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(tmp_path / "s.db", clock=clock),
                    clock=clock)


def said(p: Pipeline, src: Source, frame: str, *rules: str) -> list[str]:
    return [a.title for a in p.raw(src, frame) if not rules or a.rule in rules]


def desk(market: str = "perps", url: str = "ws://127.0.0.1:9/ws") -> Account:
    return Account(name="desk", exchange="sodex", url=url, user=USER, markets=(market,))


def catch_up(sim, market: str) -> SodexCatchUp:
    return SodexCatchUp(desk(market, sim.sodex_url), market)


def rest_base(sim) -> str:
    return f"http://127.0.0.1:{sim.port}"


# --- the contract files -----------------------------------------------------------------------

def schemas_in(node):
    if isinstance(node, dict):
        if "$schema" in node:
            yield node
        for value in node.values():
            yield from schemas_in(value)
    elif isinstance(node, list):
        for value in node:
            yield from schemas_in(value)


def test_each_sodex_contract_names_its_sdk_sources_and_holds_valid_schemas():
    contracts = load_contracts("sodex")
    assert set(contracts) == OPERATIONS
    for name, c in contracts.items():
        for source in [c["source"], *c["also"]]:
            assert source["repo"].startswith("sodex-tech/sodex-"), name
            assert HEX40.match(source["commit"]) and source["path"], name
        assert c["notes"], name
        found = list(schemas_in(c))
        assert found, name
        for s in found:
            jsonschema.Draft202012Validator.check_schema(s)
    positions = contracts["get-accounts-positions"]
    assert positions["markets"] == ["perps"]
    shapes = [set(v["schema"]["properties"]["data"]["properties"]) & {"orders", "positions"}
              for v in positions["reply_variants"]]
    assert {"orders"} in shapes and {"positions"} in shapes  # Go's and the newer python's
    assert any("client/perps.go" in a["path"] for a in positions["also"])
    assert any("parsePerpsOpenPositions" in a.get("says", "") for a in positions["also"])
    trades = {p["name"]: p for p in contracts["get-accounts-trades"]["parameters"]}
    assert trades["limit"]["schema"]["maximum"] == 1000
    assert not any(p["required"] for p in trades.values() if p["in"] == "query")
    ack = contracts["ws-subscribe"]
    assert any("success === false" in a.get("says", "") for a in ack["also"])
    liquidation = contracts["ws-accountEvent"]["frame"]["schemas"]["perps"]
    assert "mm" in json.dumps(liquidation) and "lp" in json.dumps(liquidation)


# --- (a) the simulator is held to the contract ------------------------------------------------

def test_the_simulator_answers_a_request_off_the_contract_with_an_error_and_records_it(sim):
    base = f"{rest_base(sim)}/api/v1"
    cases = [
        ("get", "/spot/accounts/0xabc/balances", {}, 400),
        ("get", f"/spot/accounts/{USER}/trades", {"since": 1}, 400),
        ("get", f"/spot/accounts/{USER}/trades", {"limit": 5000}, 400),
        ("get", f"/perps/accounts/{USER}/orders/history", {"startTime": "yesterday"}, 400),
        ("get", f"/perps/accounts/{USER}/trades", {"startTime": 20, "endTime": 10}, 400),
        ("get", f"/spot/accounts/{USER}/positions", {}, 404),
        ("get", f"/perps/accounts/{USER}/state", {}, 404),
        ("get", f"/futures/accounts/{USER}/balances", {}, 404),
        ("post", f"/spot/accounts/{USER}/balances", {}, 405),
    ]
    for method, path, params, status in cases:
        reply = getattr(requests, method)(base + path, params=params, timeout=5)
        assert reply.status_code == status, (method, path, params)
        body = reply.json()
        assert body["code"] != 0 and body["message"] and body["error"], body
    assert len(sim.contract_violations) == len(cases), sim.contract_violations
    assert "address" in sim.contract_violations[0]
    assert "unknown parameter 'since'" in sim.contract_violations[1]
    assert "above 1000" in sim.contract_violations[2]
    assert sim.contract_violations[-1].startswith("POST ")
    before = len(sim.contract_violations)
    for path, params in [(f"/spot/accounts/{USER}/balances", {}),
                         (f"/perps/accounts/{USER}/positions", {"symbol": "BTC-USD"}),
                         (f"/perps/accounts/{USER}/trades",
                          {"startTime": 1, "endTime": 2, "limit": 1000})]:
        assert requests.get(base + path, params=params, timeout=5).status_code == 200
    assert len(sim.contract_violations) == before


def validate(contract: dict, market: str, body: object, kind: str = "reply") -> list[str]:
    if kind == "reply":
        options = [contract["reply"]["schemas"][market]] + [
            v["schema"] for v in contract.get("reply_variants", ()) if market in v["markets"]]
    else:
        options = [contract["frame"]["schemas"][market]]
    errors = [[e.message for e in jsonschema.Draft202012Validator(s).iter_errors(body)]
              for s in options]
    return [] if any(not e for e in errors) else errors[0]


def test_every_sodex_reply_and_frame_the_simulator_sends_keeps_the_contract(tmp_path, sim):
    at = T0
    sim.push_sodex(USER, "spot", "accountOrderUpdate", sx_order("NEW", "0", at=at), live=False)
    sim.push_sodex(USER, "spot", "accountTrade", sx_trade(1, "0.2", at=at), live=False)
    sim.push_sodex(USER, "spot", "accountUpdate", sx_balances("900", at=at), live=False)
    sim.push_sodex(USER, "perps", "accountUpdate", sx_perps_update(
        [sx_position("BTC-USD", "0.5", "60000"), sx_position("ETH-USD", "2", "3000",
                                                             side="LONG", iw="600")], at=at),
        live=False)
    for market in ("spot", "perps"):
        catch_up(sim, market).frames(Http(), at - 3600)
    for shape in ("go", "python"):
        sim.rest.sodex_positions_shape = shape
        catch_up(sim, "perps").frames(Http(), at - 3600)
    contracts = load_contracts("sodex")
    replies = sim.rest.sodex_replies
    assert {name for name, *_ in replies} == {c for c in OPERATIONS if c.startswith("get-")}
    for name, market, status, body in replies:
        assert status == 200 and validate(contracts[name], market, body) == [], (name, body)
    # the stream side: acks, snapshots and pushes, as sent
    write(tmp_path / "rules" / "r.yaml", RULES.replace("[t]", "[hook]"))
    with HttpSink() as sink, running(agent_config(tmp_path, sim, {"hook": sink.url}),
                                     tmp_path / "rules"):
        assert sim.wait_ready(SPOT_KEY, channels=4) and sim.wait_ready(PERPS_KEY, channels=5)
        sim.push_sodex(USER, "spot", "accountOrderUpdate", sx_order("FILLED", "0.5"))
        sim.push_sodex(USER, "spot", "accountTrade", [sx_trade(2, "0.3")])
        sim.push_sodex(USER, "perps", "accountState", sx_perps_state(
            [sx_state_position("BTC-USD", "0.5", "60000")]), kind="snapshot")
        sim.push_sodex(USER, "perps", "accountEvent", sx_liquidation("BTC-USD", "0.5", "52000",
                                                                     "51900"))
        assert wait_for(lambda: len([f for k, f in sim.sodex_frames
                                     if f.get("channel") == "accountEvent"]) == 1)
    channels = {c["channel"]: c for c in contracts.values() if c["kind"] == "stream"}
    acks = 0
    for key, frame in sim.sodex_frames:
        market = key.rsplit(":", 1)[1]
        if "op" in frame:
            control = contracts["ws-subscribe"]
            schema = control["ack"] if frame["op"] in ("subscribe", "unsubscribe") \
                else control[frame["op"]]
            jsonschema.Draft202012Validator(schema).validate(frame)
            acks += frame["op"] == "subscribe"
        else:
            assert validate(channels[frame["channel"]], market, frame, "frame") == [], frame
    assert acks == 9
    assert sim.contract_violations == []


def test_the_simulator_records_a_frame_of_its_own_off_the_contract(sim):
    bad = sx_trade(1, "0.2")
    del bad["T"]
    bad["p"] = 60000  # a number where Go's string field would not decode
    sim.push_sodex(USER, "spot", "accountTrade", bad)  # live, though nobody listens
    assert len(sim.contract_violations) == 1
    assert sim.contract_violations[0].startswith("frame accountTrade (spot):")


# --- (b) history is paged, oldest first --------------------------------------------------------

def test_history_is_read_across_pages_of_at_most_1000_rows(sim):
    now = time.time()  # wall clock ok: the catch-up's window ends at the wall clock's now
    for i in range(2500):
        sim.push_sodex(USER, "spot", "accountTrade",
                       {**sx_trade(10_000 + i, "0.01", at=now - 7200 + i), "i": 90_000 + i},
                       live=False)
    for i in range(1100):
        sim.push_sodex(USER, "spot", "accountOrderUpdate",
                       {**sx_order("FILLED", "0.5", at=now - 7200 + i), "i": 90_000 + i},
                       live=False)
    frames = catch_up(sim, "spot").frames(Http(), now - 3 * 3600)
    trades = [t for f in frames if f["channel"] == "accountTrade" for t in f["data"]]
    orders = [o for f in frames if f["channel"] == "accountOrderUpdate" for o in f["data"]]
    assert sorted(t["t"] for t in trades) == list(range(10_000, 12_500))
    assert len({o["i"] for o in orders}) == 1100
    pages = [b["data"] for n, m, s, b in sim.rest.sodex_replies if n == "get-accounts-trades"]
    assert len(pages) >= 3 and max(len(p) for p in pages) == 1000
    assert all([r["time"] for r in p] == sorted(r["time"] for r in p) for p in pages)
    assert sim.contract_violations == []


# --- (c) subscriptions as the SDKs do them -------------------------------------------------------

def test_only_an_explicit_success_false_refuses_a_channel_and_it_is_retried_alone():
    now = [100.0]
    protocol = SodexProtocol(desk("perps"), "perps", rng=lambda: 0.5)
    sent = [json.loads(m) for m in protocol.opening()]
    ids = {m["params"]["channel"]: m["id"] for m in sent}
    assert len(sent) == 5
    protocol.control({"op": "subscribe", "id": ids["accountState"]})  # no success: fine
    protocol.control({"op": "subscribe", "id": ids["accountEvent"], "success": False,
                      "error": "not now"})
    for ch in ("accountUpdate", "accountOrderUpdate", "accountTrade"):
        protocol.control({"op": "subscribe", "id": ids[ch], "success": True})
    assert protocol.ready()
    assert protocol.take_reports() == [("rejected", "SoDEX refused accountEvent for account "
                                        "desk (perps): not now; retrying that channel alone")]
    assert protocol.due(now[0], 1.0, 60.0) == []
    now[0] += 1.0
    again = [json.loads(m) for m in protocol.due(now[0], 1.0, 60.0)]
    assert [m["params"]["channel"] for m in again] == ["accountEvent"]
    protocol.control({"op": "subscribe", "id": again[0]["id"], "success": False})
    assert protocol.take_reports() == []  # said once
    assert protocol.due(now[0], 1.0, 60.0) == []  # the loop's next turn starts the wait
    now[0] += 1.5
    assert protocol.due(now[0], 1.0, 60.0) == []  # backing off: 2 s now
    now[0] += 0.5
    third = [json.loads(m) for m in protocol.due(now[0], 1.0, 60.0)]
    protocol.control({"op": "subscribe", "id": third[0]["id"], "success": True})
    assert protocol.take_reports() == [("connected", "SoDEX accepted accountEvent for account "
                                        "desk (perps)")]
    now[0] += 3600
    assert protocol.due(now[0], 1.0, 60.0) == []


def test_a_refused_channel_is_retried_alone_while_the_socket_and_the_rest_flow(tmp_path, sim):
    sim.refuse_channel(PERPS_KEY, "accountEvent", times=2)
    with HttpSink() as sink:
        write(tmp_path / "rules" / "r.yaml", RULES.replace("[t]", "[hook]") + """
  - name: streams
    on: stream
    notify: [hook]
    group_wait: 0
    title: "stream {account} {market} {status}"
    message: "{reason}"
""")
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[perps]")
        with running(cfg, tmp_path / "rules"):
            assert wait_for(lambda: "stream desk perps rejected" in sink.titles(), 10)
            sim.push_sodex(USER, "perps", "accountTrade", sx_trade(7, "0.1"))
            assert wait_for(lambda: "fill vBTC_vUSDC:7 0.1 caught_up=no" in sink.titles(), 10)
            assert wait_for(lambda: "accountEvent" in sim.channels(PERPS_KEY), 10)
            sim.push_sodex(USER, "perps", "accountEvent", sx_liquidation("BTC-USD", "0.5",
                                                                         "52000", "51900"))
            assert wait_for(lambda: any(t.startswith("liquidated BTC-USD")
                                        for t in sink.titles()), 10)
            assert wait_for(lambda: "stream desk perps connected" in sink.titles(), 10)
    post = next(p for p in sink.posts if p["title"] == "stream desk perps rejected")
    assert "SoDEX refused accountEvent for account desk (perps)" in post["message"]
    assert sink.titles().count("stream desk perps rejected") == 1
    subscribes = [m["params"]["channel"] for k, m in sim.received
                  if k == PERPS_KEY and isinstance(m, dict) and m.get("op") == "subscribe"]
    assert subscribes.count("accountEvent") == 3 and subscribes.count("accountTrade") == 1
    assert sim.handshakes["sodex:*:perps"] == 1  # the socket was never given up


# --- (d) snapshots are snapshots ---------------------------------------------------------------

def test_a_position_missing_from_a_full_snapshot_is_closed_and_a_balance_zeroed(tmp_path, sim):
    clock = Clock(time.time())  # wall clock ok: REST positions are stamped now; no calendar
    p = pipeline(tmp_path, clock)
    opened = sx("accountUpdate", sx_perps_update([
        sx_position("BTC-USD", "0.5", "60000"), sx_position("ETH-USD", "-2", "3000")],
        at=clock.now))
    assert said(p, PERPS, opened, "positions") == [
        "BTC-USD long 0.5 - caught_up=no", "ETH-USD short -2 - caught_up=no"]
    clock.now += 10
    state = sx("accountState", sx_perps_state(
        [sx_state_position("ETH-USD", "-2", "3000")], at=clock.now), "snapshot")
    assert said(p, PERPS, state, "positions") == ["BTC-USD flat 0 - caught_up=no"]
    assert said(p, PERPS, state, "positions") == []  # a re-sent snapshot: nothing new
    # over REST after a gap: the exchange lists no position any more
    clock.now += 10
    frames = catch_up(sim, "perps").frames(Http(), clock.now - 60)
    assert said_all(p.catch_up(PERPS, frames, clock.now), "positions") == [
        "ETH-USD flat 0 cross caught_up=yes"]
    # balances: an update is a delta; a snapshot lists them all
    spot = sx("accountUpdate", sx_balances("900", at=clock.now))
    assert said(p, SPOT, spot, "balances") == ["vUSDC 900 (was -)", "vBTC 0.5 (was -)"]
    only_usdc = sx_balances("900", at=clock.now)
    only_usdc["B"] = only_usdc["B"][:1]
    assert said(p, SPOT, sx("accountUpdate", only_usdc), "balances") == []
    assert said(p, SPOT, sx("accountState", {"user": USER, "aid": 1, "uid": 1,
                                             "B": only_usdc["B"]}, "snapshot"),
                "balances") == ["vBTC 0 (was 0.5)"]


def said_all(alerts, *rules: str) -> list[str]:
    return [a.title for a in alerts if not rules or a.rule in rules]


# --- (e) liquidations, margin ------------------------------------------------------------------

def test_a_liquidation_is_an_event_and_no_account_event_overwrites_a_position(tmp_path):
    clock = Clock(T0)
    p = pipeline(tmp_path, clock)
    state = sx("accountState", sx_perps_state([sx_state_position(
        "BTC-USD", "0.5", "60000", mode="ISOLATED", iw=None)], at=clock.now), "snapshot")
    p.raw(PERPS, state)  # the first look: recorded
    clock.now += 5
    liquidation = sx("accountEvent", sx_liquidation("BTC-USD", "0.5", "52000", "51900",
                                                    mode="ISOLATED", at=clock.now))
    alerts = p.raw(PERPS, liquidation)
    assert [(a.rule, a.title, a.body) for a in alerts] == [(
        "liquidated", "liquidated BTC-USD long 0.5 isolated",
        "mark 52000 liq 51900 value 1000")]
    assert p.raw(PERPS, liquidation) == []  # re-sent: once
    other = sx("accountEvent", {"type": "adl", "E": int(clock.now * 1000), "P": [
        {"s": "BTC-USD", "ps": "BOTH", "sz": "0.1", "mp": "52000"}]})
    assert p.raw(PERPS, other) == []
    assert sum(p.drops.counts.values()) == 0


def test_margin_mode_is_read_from_every_field_that_carries_it(tmp_path):
    clock = Clock(T0)
    p = pipeline(tmp_path, clock)
    p.raw(PERPS, sx("accountState", sx_perps_state([], at=clock.now), "snapshot"))
    state = sx("accountState", sx_perps_state([
        sx_state_position("BTC-USD", "0.5", "60000", mode="ISOLATED", iw=None),
        sx_state_position("ETH-USD", "1", "3000", mode=2)], at=clock.now), "snapshot")
    assert said(p, PERPS, state, "positions") == ["BTC-USD long 0.5 isolated caught_up=no",
                                                  "ETH-USD long 1 cross caught_up=no"]
    update = sx("accountUpdate", sx_perps_update([
        sx_position("BTC-USD", "0.7", "60000", iw=None),
        sx_position("SOL-USD", "3", "150", iw=None),
        sx_position("DOGE-USD", "9", "0.1", iw="5")], at=clock.now))
    assert said(p, PERPS, update, "positions") == [
        "BTC-USD long 0.7 isolated caught_up=no",  # a null iw does not make it cross
        "SOL-USD long 3 - caught_up=no",  # not known: not guessed
        "DOGE-USD long 9 isolated caught_up=no"]


def test_position_events_carry_liquidation_price_pnl_and_leverage(tmp_path):
    clock = Clock(T0)
    p = pipeline(tmp_path, clock)
    p.raw(PERPS, sx("accountState", sx_perps_state([], at=clock.now), "snapshot"))
    state = sx_perps_state([sx_state_position("BTC-USD", "0.5", "60000", lp="48000.5",
                                              ur="-20", leverage=10)], at=clock.now)
    alerts = p.raw(PERPS, sx("accountState", state, "snapshot"))
    assert [(a.title, a.body) for a in alerts] == [
        ("BTC-USD long 0.5 cross caught_up=no", "lp 48000.5 ur -20 lev 10")]
    state["P"][0]["ur"] = "-150.25"  # only the P&L moved: no "change", but rules see it
    assert said(p, PERPS, sx("accountState", state, "snapshot")) == ["losing BTC-USD -150.25"]
    assert said(p, PERPS, sx("accountState", state, "snapshot")) == []


def test_a_figure_rest_does_not_state_is_kept_so_a_rule_on_it_does_not_flap(tmp_path):
    """REST's positions carry no liquidation price (TS/docs shape); the catch-up between two
    pushes must not make a rule on it re-arm and fire again."""
    from alertd.exchanges.sodex.rest import position_row

    clock = Clock(T0)
    write(tmp_path / "rules" / "r.yaml", """
rules:
  - name: near
    on: position
    when: {liquidation_price: {gte: 48000}}
    notify: [t]
    group_wait: 0
    title: "near {symbol} {liquidation_price}"
""")
    p = Pipeline(load_rules(tmp_path / "rules", ["t"]),
                 Store(tmp_path / "s.db", clock=clock), clock=clock)
    p.raw(PERPS, sx("accountState", sx_perps_state([]), "snapshot"))
    state = sx("accountState", sx_perps_state([sx_state_position(
        "BTC-USD", "0.5", "60000", lp="48000.5")]), "snapshot")
    assert [a.title for a in p.raw(PERPS, state)] == ["near BTC-USD 48000.5"]
    row = {"id": 1, "symbol": "BTC-USD", "marginMode": "CROSS", "side": "BOTH", "size": "0.5",
           "avgEntryPrice": "60000", "leverage": 10, "active": True}
    rest = {"channel": "accountState", "type": "snapshot",
            "data": {"B": [], "P": [position_row(row)]}}
    assert p.catch_up(PERPS, [rest], clock.now) == []
    assert p.raw(PERPS, state) == []


def test_a_margin_rule_warns_at_80_percent_of_the_account_value_in_use(tmp_path):
    clock = Clock(T0)
    p = pipeline(tmp_path, clock)

    def margin(available: str) -> list[tuple[str, str]]:
        clock.now += 1
        frame = sx("accountState", sx_perps_state([], av="1000", am=available, at=clock.now),
                   "snapshot")
        return [(a.title, a.body) for a in p.raw(PERPS, frame) if a.rule == "margin"]

    assert margin("300") == []
    assert margin("150") == [("margin 0.85", "value 1000 available 150 used 850")]
    assert margin("100") == []  # still above: quiet
    assert margin("500") == [("Resolved: margin 0.5",
                              "now 0.5 of the account value in use (value 1000, available 500)")]


def test_order_events_carry_the_reject_reason_and_the_exec_type(tmp_path):
    clock = Clock(T0)
    p = pipeline(tmp_path, clock)
    p.raw(SPOT, sx("accountOrderUpdate", sx_order("NEW", "0", at=clock.now)))
    rejected = {**sx_order("REJECTED", "0", at=clock.now + 1), "x": "REJECTED",
                "r": "insufficient balance"}
    alerts = [a for a in p.raw(SPOT, sx("accountOrderUpdate", rejected)) if a.rule == "orders"]
    assert [(a.title, a.body) for a in alerts] == [
        ("order 7001 rejected rejected", "insufficient balance")]


# --- (f) REST positions in every published shape ------------------------------------------------

@pytest.mark.parametrize("shape", ["docs", "go", "python"])
def test_rest_positions_are_read_in_every_published_shape(sim, shape):
    sim.rest.sodex_positions_shape = shape
    sim.push_sodex(USER, "perps", "accountUpdate", sx_perps_update([
        sx_position("BTC-USD", "0.5", "60000"),
        sx_position("ETH-USD", "2", "3000", side="SHORT", iw="600")], at=T0), live=False)
    frames = catch_up(sim, "perps").frames(Http(), T0 - 60)
    positions = {(p["s"], p["ps"]): p for p in frames[0]["data"]["P"]}
    assert set(positions) == {("BTC-USD", "BOTH"), ("ETH-USD", "SHORT")}
    assert Decimal(positions[("BTC-USD", "BOTH")]["sz"]) == Decimal("0.5")
    assert positions[("ETH-USD", "SHORT")]["m"].lower() == "isolated"
    assert sim.contract_violations == []


# --- (g) the flows of the demo, over real sockets, keep the contract ----------------------------

def test_a_session_like_the_demo_s_keeps_every_sodex_contract(tmp_path, sim):
    with HttpSink() as sink:
        write(tmp_path / "rules" / "r.yaml", RULES.replace("[t]", "[hook]"))
        cfg = agent_config(tmp_path, sim, {"hook": sink.url})
        with running(cfg, tmp_path / "rules"):
            assert sim.wait_ready(SPOT_KEY, channels=4) and sim.wait_ready(PERPS_KEY,
                                                                           channels=5)
            sim.push_sodex(USER, "spot", "accountOrderUpdate", sx_order("NEW", "0"))
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(901, "0.2"))
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(902, "0.3"))
            sim.push_sodex(USER, "spot", "accountOrderUpdate", sx_order("FILLED", "0.5"))
            sim.push_sodex(USER, "perps", "accountUpdate", sx_perps_update(
                [sx_position("BTC-USD", "0.5", "60000")]))
            sim.push_sodex(USER, "perps", "accountState", sx_perps_state(
                [sx_state_position("BTC-USD", "0.5", "60000")], am="100"), kind="snapshot")
            sim.push_sodex(USER, "perps", "accountEvent", sx_liquidation(
                "BTC-USD", "0.5", "52000", "51900"))
            assert wait_for(lambda: {"fill vBTC_vUSDC:902 0.3 caught_up=no", "margin 0.9",
                                     "liquidated BTC-USD long 0.5 cross"}
                            <= set(sink.titles()), 10), sink.titles()
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(903, "0.1"), live=False)
            sim.drop(SPOT_KEY)
            assert wait_for(lambda: "fill vBTC_vUSDC:903 0.1 caught_up=yes" in sink.titles(),
                            15)
    assert sim.contract_violations == []
    assert sim.sodex_frames and sim.rest.sodex_replies
