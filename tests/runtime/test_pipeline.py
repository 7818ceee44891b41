"""The pure core: frames in, alerts out, against a real SQLite state file."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest

from alertd.domain.observations import Source
from alertd.rules.load import load_rules
from alertd.runtime.pipeline import Pipeline
from alertd.sim.frames import dd_balance, dd_order, dd_points, sx, sx_balances, sx_order, sx_trade
from alertd.storage.store import Store
from tests.conftest import MAIN, PERPS, SPOT, write

RULES = """
rules:
  - name: fills
    on: fill
    notify: [t]
    group_wait: 0
  - name: orders
    on: order
    notify: [t]
    group_wait: 0
    title: "{status}"
  - name: low-ada
    on: balance
    when: {asset: ADA, free: {lt: 500}}
    rearm: {free: {gte: 550}}
    notify: [t]
    group_wait: 0
  - name: low-usdc
    on: balance
    when: {asset: vusdc, free: {lt: "1000.5"}}
    notify: [t]
    group_wait: 0
  - name: league
    on: league
    notify: [t]
    group_wait: 0
    title: "{direction} {previous} {league}"
  - name: positions
    on: position
    notify: [t]
    group_wait: 0
    title: "{symbol} {side} {size} was {previous_size}"
"""


@pytest.fixture
def rules(tmp_path: Path):
    write(tmp_path / "rules" / "r.yaml", RULES)
    return load_rules(tmp_path / "rules", ["t"])


def make(rules, path: Path) -> Pipeline:
    return Pipeline(rules, Store(path))


def alerts(pipeline: Pipeline, src: Source, frame) -> list[tuple[str, str]]:
    raw = frame if isinstance(frame, str | bytes) else json.dumps(frame)
    return [(a.rule, a.title) for a in pipeline.raw(src, raw)]


def test_deltadefi_partial_then_complete_fill_each_once(state, rules, tmp_path):
    p = make(rules, state)
    assert alerts(p, MAIN, dd_order("o1", "open", [], "0")) == [("orders", "open")]
    partial = dd_order("o1", "partially_filled", [("r1", "800")], "800")
    got = p.raw(MAIN, json.dumps(partial))
    assert [a.rule for a in got] == ["fills", "orders"]
    assert "800/2000" in got[0].title
    assert alerts(p, MAIN, partial) == []  # the same frame re-sent
    done = p.raw(MAIN, json.dumps(dd_order("o1", "closed", [("r1", "800"), ("r2", "1200")],
                                           "2000")))
    assert [a.rule for a in done] == ["fills", "orders"]
    assert "2000/2000" in done[0].title
    assert alerts(p, MAIN, dd_order("o1", "closed", [("r1", "800"), ("r2", "1200")], "2000")) == []


def test_deltadefi_fill_without_records_comes_from_executed_growth(state, rules, tmp_path):
    p = make(rules, state)
    alerts(p, MAIN, dd_order("o2", "open", [], "0"))
    got = p.raw(MAIN, json.dumps(dd_order("o2", "partially_filled", [], "500")))
    assert [a.rule for a in got] == ["fills", "orders"]
    assert got[0].title.startswith("buy ADAUSDM filled 500/2000")
    # a later frame that carries the record for that same 500 is not a second fill
    assert alerts(p, MAIN, dd_order("o2", "partially_filled", [("r9", "500")], "500")) == []
    assert [r for r, _ in alerts(p, MAIN, dd_order("o2", "closed", [("r9", "500"), ("r10", "1500")],
                                                   "2000"))] == ["fills", "orders"]


def test_sodex_trades_are_fills_once_and_track_completion(state, rules, tmp_path):
    p = make(rules, state)
    assert alerts(p, SPOT, sx("accountOrderUpdate", sx_order("NEW", "0"))) == [("orders", "open")]
    first = p.raw(SPOT, sx("accountTrade", sx_trade(1, "0.2")))
    assert [a.title for a in first] == ["buy vBTC_vUSDC filled 0.2/0.5"]
    assert alerts(p, SPOT, sx("accountTrade", sx_trade(1, "0.2"))) == []
    second = p.raw(SPOT, sx("accountTrade", [sx_trade(1, "0.2"), sx_trade(2, "0.3")]))
    assert [a.title for a in second] == ["buy vBTC_vUSDC filled 0.5/0.5"]
    assert "yes" in second[0].body or second[0].title  # complete
    assert alerts(p, SPOT, sx("accountOrderUpdate", sx_order("FILLED", "0.5"))) == [
        ("orders", "filled")]
    assert alerts(p, SPOT, sx("accountOrderUpdate", sx_order("FILLED", "0.5"))) == []


def test_low_balance_fires_once_stays_quiet_rearms_and_fires_again(state, rules, tmp_path):
    p = make(rules, state)
    seq = {"450": 1, "430": 0, "520": 0, "549.99": 0, "560": 0, "499.999999": 1, "300": 0}
    fired = [len(alerts(p, MAIN, dd_balance(v))) for v in seq]
    assert fired == list(seq.values())


def test_balance_already_low_at_start_fires_once_and_restart_repeats_nothing(
        state, rules, tmp_path):
    p = make(rules, state)
    assert [r for r, _ in alerts(p, MAIN, dd_balance("100"))] == ["low-ada"]
    p.store.close()
    again = make(rules, state)  # restart: same state file
    assert alerts(again, MAIN, dd_balance("100")) == []
    assert alerts(again, MAIN, dd_balance("90")) == []
    assert [r for r, _ in alerts(again, MAIN, dd_balance("600"))] == []
    assert [r for r, _ in alerts(again, MAIN, dd_balance("10"))] == ["low-ada"]


def test_restart_does_not_repeat_fills_orders_or_leagues(state, rules, tmp_path):
    p = make(rules, state)
    frames = [dd_order("o1", "partially_filled", [("r1", "800")], "800"),
              dd_points("100", "silver"), dd_points("200", "gold")]
    assert sum(len(alerts(p, MAIN, f)) for f in frames) == 3
    p.store.close()
    again = make(rules, state)
    assert [alerts(again, MAIN, f) for f in (frames[0], frames[2])] == [[], []]


def test_league_change_has_direction_and_first_league_only_records(state, rules, tmp_path):
    p = make(rules, state)
    assert alerts(p, MAIN, dd_points("100", "silver")) == []
    assert alerts(p, MAIN, dd_points("200", "platinum")) == [("league", "up silver platinum")]
    assert alerts(p, MAIN, dd_points("200", "platinum")) == []
    assert alerts(p, MAIN, dd_points("150", "gold", "-50")) == [("league", "down platinum gold")]


def test_sodex_snapshot_is_not_a_change_but_a_first_low_balance_is(state, rules, tmp_path):
    p = make(rules, state)
    snap = sx("accountUpdate", sx_balances("900"), kind="snapshot")
    assert [r for r, _ in alerts(p, SPOT, snap)] == ["low-usdc"]
    assert alerts(p, SPOT, snap) == []
    # a trade in the very first snapshot is history, not news
    assert alerts(p, SPOT, sx("accountTrade", [sx_trade(5, "0.1")], kind="snapshot")) == []
    assert alerts(p, SPOT, sx("accountTrade", sx_trade(5, "0.1"))) == []


def test_exact_decimals_from_json_numbers(state, rules, tmp_path):
    p = make(rules, state)
    # 1000.4999999999999999 would round to 1000.5 as a float; as a decimal it is below
    frame = ('{"channel":"accountUpdate","type":"update","data":{"B":[{"i":0,"a":"vUSDC",'
             '"t":1000.4999999999999999,"l":0}]}}')
    assert [r for r, _ in alerts(p, SPOT, frame)] == ["low-usdc"]
    row = p.detector.levels.get("desk/spot/balance/vusdc")
    assert Decimal(row[0]) == Decimal("1000.4999999999999999")


def test_perps_positions(state, rules, tmp_path):
    p = make(rules, state)
    pos = {"E": 1, "B": [{"a": "vUSDC", "wb": "5000", "co": "10"}],
           "P": [{"i": 1, "s": "BTC-USD", "sz": "-0.5", "ep": "60000", "iw": None, "ps": "BOTH"}]}
    assert alerts(p, PERPS, sx("accountUpdate", pos)) == [("positions", "BTC-USD short -0.5 was -")]
    assert alerts(p, PERPS, sx("accountUpdate", pos)) == []
    pos["P"][0]["sz"] = "0"
    assert alerts(p, PERPS, sx("accountUpdate", pos)) == [("positions", "BTC-USD flat 0 was -0.5")]


@pytest.mark.parametrize(("raw", "reason"), [
    (b"\xff\xfe", "not_utf8"), ("{nope", "not_json"), ("[1, 2]", "not_object"),
    ('{"type":"Account","sub_type":"balance","balance":[{"asset":"ada"}]}', "schema_invalid"),
    ('{"type":"Account","sub_type":"market_depth"}', "unknown_type"),
    ('{"type":"Account","sub_type":"order_info","order":{"id":"x","status":"open",'
     '"symbol":"A","side":"buy","base_qty":"NaN"}}', "schema_invalid"),
    ("x" * (1024 * 1024 + 1), "oversized"),
])
def test_bad_frames_are_dropped_and_counted_not_fatal(state, rules, tmp_path, raw, reason):
    p = make(rules, state)
    assert p.raw(MAIN, raw) == []
    assert p.drops.counts[("main/spot", reason)] == 1
    assert [r for r, _ in alerts(p, MAIN, dd_balance("100"))] == ["low-ada"]


def test_alerts_and_state_commit_together(state, rules, tmp_path):
    p = make(rules, state)
    alerts(p, MAIN, dd_balance("100"))
    rows = p.store.db.execute("SELECT rule, notifier, status FROM outbox").fetchall()
    assert rows == [("low-ada", "t", "pending")]


def test_snapshot_after_the_first_connection_announces_what_is_new(state, rules, tmp_path):
    p = make(rules, state)
    assert alerts(p, SPOT, sx("accountOrderUpdate", [sx_order("NEW", "0")], kind="snapshot")) == []
    assert alerts(p, SPOT, sx("accountOrderUpdate", [sx_order("NEW", "0")], kind="snapshot")) == []
    other = {**sx_order("NEW", "0"), "i": 7002}
    assert alerts(p, SPOT, sx("accountOrderUpdate", [sx_order("NEW", "0"), other],
                              kind="snapshot")) == [("orders", "open")]


def test_a_template_that_fails_still_delivers_the_raw_fields(state, rules, tmp_path):
    import dataclasses

    from alertd.rules.model import RuleSet

    class Broken:
        def render(self, values):
            raise RuntimeError("boom")

    broken = RuleSet(dataclasses.replace(r, title=Broken()) if r.name == "low-ada" else r
                     for r in rules.rules)
    p = Pipeline(broken, Store(state))
    [alert] = p.raw(MAIN, dd_balance("100"))
    assert alert.title == "low-ada: balance on main"
    assert "asset=ada" in alert.body and "free=100" in alert.body


def test_pruning_forgets_finished_orders_but_never_the_fills_of_a_live_one(state, rules, tmp_path):
    from alertd.domain.observations import TERMINAL

    now = [1_000_000.0]
    p = Pipeline(rules, Store(state, clock=lambda: now[0]))
    live = dd_order("live", "partially_filled", [("r1", "800")], "800")
    done = dd_order("done", "closed", [("d1", "2000")], "2000")
    assert len(alerts(p, MAIN, live)) == 2 and len(alerts(p, MAIN, done)) == 2
    p.flush()
    now[0] += 40 * 86400  # forty days on
    assert p.prune(TERMINAL) == 2  # the finished order and its fill
    # the long-lived order's next frame restates its old record: not a new fill
    assert alerts(p, MAIN, live) == []
    assert alerts(p, MAIN, dd_order("live", "partially_filled",
                                    [("r1", "800"), ("r2", "100")], "900")) == [
        ("fills", "buy ADAUSDM filled 900/2000")]
