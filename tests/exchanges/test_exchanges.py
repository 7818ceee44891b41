"""Read right on the real exchanges: fill sizing, snapshots, tolerance the official SDKs have."""

from __future__ import annotations

import json
import time
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertd.config.load import Account
from alertd.domain.observations import Source
from alertd.exchanges.sodex.stream import SodexProtocol
from alertd.rules.load import load_rules
from alertd.runtime.pipeline import Pipeline
from alertd.sim.frames import dd_order, sx, sx_order, sx_trade
from alertd.storage.store import Store
from tests.conftest import MAIN, PERPS, SPOT, write

RULES = """
rules:
  - name: fills
    on: fill
    notify: [t]
    group_wait: 0
    title: "{trade_id} {qty} {complete}"
  - name: positions
    on: position
    notify: [t]
    group_wait: 0
    title: "{symbol} {side} {size}"
  - name: balances
    on: balance
    notify: [t]
    group_wait: 0
    title: "{asset} {free}"
  - name: tiny
    on: balance
    when: {asset: ada, free: {lt: 0.1000000000000000055511151231257827}}
    notify: [t]
    group_wait: 0
"""


@pytest.fixture
def pipeline(tmp_path: Path) -> Pipeline:
    write(tmp_path / "rules" / "r.yaml", RULES)
    return Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(tmp_path / "s.db"))


def titles(p: Pipeline, src: Source, frame: object, rule: str = "fills") -> list[str]:
    raw = frame if isinstance(frame, str) else json.dumps(frame)
    return [a.title for a in p.raw(src, raw) if a.rule == rule]


def test_every_record_in_one_frame_is_sized_and_only_the_last_completes(pipeline):
    frame = dd_order("o1", "closed", [("r1", "800"), ("r2", "1200")], "2000")
    assert titles(pipeline, MAIN, frame) == ["r1 800 no", "r2 1200 yes"]


def test_records_arriving_after_executed_grew_pay_off_the_derived_fill(pipeline):
    assert titles(pipeline, MAIN, dd_order("o1", "partially_filled", [], "40")) == [
        "o1@40 40 no"]
    # the records behind those 40 arrive (as one record of 60 that grew meanwhile)
    got = titles(pipeline, MAIN, dd_order("o1", "closed", [("r1", "60")], "60", qty="60"))
    assert got == ["r1 20 yes"]
    assert titles(pipeline, MAIN, dd_order("o1", "closed", [("r1", "60")], "60", qty="60")) == []


def test_quote_funded_orders_are_never_complete_against_zero(pipeline):
    frame = dd_order("o1", "partially_filled", [("r1", "5")], "5", qty="0")
    assert titles(pipeline, MAIN, frame) == ["r1 5 no"]
    done = dd_order("o1", "closed", [("r1", "5"), ("r2", "7")], "12", qty="0")
    assert titles(pipeline, MAIN, done) == ["r2 7 yes"]
    order = {**sx_order("NEW", "0"), "q": "0", "i": 8001}
    pipeline.raw(SPOT, sx("accountOrderUpdate", order))
    trade = {**sx_trade(5, "0.2"), "i": 8001}
    assert titles(pipeline, SPOT, sx("accountTrade", trade)) == ["vBTC_vUSDC:5 0.2 no"]


frames_strategy = st.lists(st.tuples(st.integers(0, 4), st.integers(0, 30)), min_size=1,
                           max_size=8)


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=frames_strategy)
def test_fills_announced_always_add_up_to_what_was_executed(tmp_path_factory, steps):
    """Whatever order records and executed_base_qty arrive in, each record is announced at
    most once and the quantities announced sum to what the order executed, no more."""
    tmp = tmp_path_factory.mktemp("fills")
    write(tmp / "rules" / "r.yaml", RULES)
    p = Pipeline(load_rules(tmp / "rules", ["t"]), Store(tmp / "s.db"))
    records: list[tuple[str, str]] = []
    executed = Decimal(0)
    for new_records, extra in steps:
        for _ in range(new_records):
            records.append((f"r{len(records)}", str(len(records) + 1)))
        recorded = sum(Decimal(q) for _, q in records)
        executed = max(executed, recorded + extra)
        frame = dd_order("o1", "partially_filled", list(records), str(executed), qty="100000")
        p.raw(MAIN, json.dumps(frame))
    sizes = p.store.db.execute("SELECT body FROM outbox").fetchall()
    announced = [a for a in sizes]
    total = Decimal(0)
    for (body,) in announced:
        total += Decimal(body.split(" @ ")[0])
    assert total == executed


def test_a_first_sodex_snapshot_is_history_every_item_of_it(pipeline):
    history = [sx_trade(i, "0.1") for i in (1, 2, 3)]
    assert titles(pipeline, SPOT, sx("accountTrade", history, "snapshot")) == []
    assert titles(pipeline, SPOT, sx("accountTrade", sx_trade(4, "0.1"))) == [
        "vBTC_vUSDC:4 0.1 no"]


def test_hedge_mode_legs_are_two_positions_not_one_that_flips(pipeline):
    data = {"E": 1, "P": [{"s": "BTC-USD", "sz": "1", "ps": "LONG"},
                          {"s": "BTC-USD", "sz": "-2", "ps": "SHORT"}]}
    assert len(titles(pipeline, PERPS, sx("accountUpdate", data), "positions")) == 2
    assert titles(pipeline, PERPS, sx("accountUpdate", data), "positions") == []
    assert titles(pipeline, PERPS, sx("accountUpdate", data), "positions") == []


def test_what_the_sdks_tolerate_is_read_not_dropped(pipeline):
    no_type = json.dumps({"channel": "accountTrade", "data": sx_trade(9, "0.1")})
    assert titles(pipeline, SPOT, no_type) == ["vBTC_vUSDC:9 0.1 no"]
    assert titles(pipeline, SPOT, json.dumps({"channel": "accountTrade", "type": "update",
                                              "data": None})) == []
    assert titles(pipeline, SPOT, sx("accountUpdate", {"E": 1, "B": None}), "balances") == []
    assert titles(pipeline, MAIN, '{"type":"Account","sub_type":"balance","balance":null}',
                  "balances") == []
    old = dd_order("o7", "open", [("r7", "3")], "3")
    old["order"]["order_id"] = old["order"].pop("id")
    assert titles(pipeline, MAIN, old) == ["r7 3 no"]
    legacy = {"type": "Account", "sub_type": "trading_history",
              "trading_history": [dd_order("o8", "closed", [("r8", "2")], "2", qty="2")["order"]]}
    assert titles(pipeline, MAIN, legacy) == ["r8 2 yes"]
    assert sum(pipeline.drops.counts.values()) == 0


def test_sodex_error_message_is_logged_and_the_stream_keeps_reading(caplog):
    account = Account(name="desk", exchange="sodex", url="ws://127.0.0.1:9/ws",
                      user="0x" + "a" * 40)
    protocol = SodexProtocol(account, "spot")
    assert protocol.control({"op": "error", "code": 400, "error": "bad \ud800 thing"}) is True
    assert "bad \\ud800 thing" in caplog.text


def test_yaml_thresholds_are_exact_decimals_never_floats(pipeline):
    # as a float the threshold would be 0.1 and this balance would not be below it
    frame = ('{"type":"Account","sub_type":"balance","balance":'
             '[{"asset":"ada","free":0.1000000000000000001,"locked":0}]}')
    assert [a.rule for a in pipeline.raw(MAIN, frame) if a.rule == "tiny"] == ["tiny"]


class ExplodingDetector:
    """The real detector, failing on symbol BOOM after it has written its state (a bug)."""

    def __init__(self, inner) -> None:
        self.inner = inner

    def observe(self, src, obs, history_until=None):
        events = self.inner.observe(src, obs, history_until)
        if getattr(obs, "symbol", "") == "BOOM":
            raise RuntimeError("bug")
        return events


def test_a_failing_frame_rolls_back_alone_not_the_frames_committed_with_it(pipeline):
    pipeline.detector = ExplodingDetector(pipeline.detector)
    before = dd_order("o1", "partially_filled", [("r1", "5")], "5")
    boom = dd_order("o2", "partially_filled", [("r2", "5")], "5")
    boom["order"]["symbol"] = "BOOM"
    after = dd_order("o3", "partially_filled", [("r3", "5")], "5")
    for frame in (before, boom, after):  # one group commit: nothing flushed in between
        pipeline.raw(MAIN, json.dumps(frame))
    pipeline.flush()
    rows = pipeline.store.db.execute("SELECT title FROM outbox WHERE rule='fills'").fetchall()
    assert sorted(t for (t,) in rows) == ["r1 5 no", "r3 5 no"]
    assert pipeline.detector.inner.book.order("main/spot", "o2") is None
    assert pipeline.drops.counts[("main/spot", "internal_error")] == 1
    # the failed frame left nothing behind: sent again (the bug gone), it is announced
    pipeline.detector = pipeline.detector.inner
    assert titles(pipeline, MAIN, boom) == ["r2 5 no"]


def test_the_core_thread_commits_an_alert_with_nobody_else_calling_flush(pipeline):
    from alertd.runtime.core import Core
    from tests.sinks import wait_for

    committed: list[set[str]] = []
    pipeline.on_queued = committed.append
    core = Core(pipeline)
    core.start()
    try:
        core.submit(pipeline.raw, MAIN, json.dumps(dd_order("o1", "open", [("r1", "1")], "1")))
        assert wait_for(lambda: committed == [{"t"}], 5)
        assert pipeline.store.visible_id >= 1
    finally:
        core.stop()


def test_a_frame_nested_past_the_parser_costs_that_frame_only(pipeline):
    deep = "[" * 100_000 + "]" * 100_000
    assert pipeline.raw(MAIN, deep) == []
    assert titles(pipeline, MAIN, dd_order("o1", "open", [("r1", "2")], "2")) == ["r1 2 no"]
    assert pipeline.drops.counts[("main/spot", "too_deep")] == 1


def test_an_order_forgotten_by_housekeeping_and_restated_is_not_news_again(tmp_path):
    from alertd.domain.observations import TERMINAL

    now = [time.time()]  # wall clock ok: frames are stamped now; only the 40-day step counts
    write(tmp_path / "rules" / "r.yaml", RULES + """
  - name: orders
    on: order
    notify: [t]
    group_wait: 0
    title: "{order_id} {status}"
""")
    p = Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(tmp_path / "s.db",
                                                              clock=lambda: now[0]))
    done = dd_order("done", "closed", [("d1", "2000")], "2000")
    assert titles(p, MAIN, done) == ["d1 2000 yes"]
    p.flush()
    now[0] += 40 * 86400
    assert p.prune(TERMINAL) == 3  # the order, its fill, its line in the fill log
    assert p.raw(MAIN, json.dumps(done)) == []  # the exchange restating it, weeks later


def test_housekeeping_forgets_stuck_orders_and_the_armed_state_of_removed_rules(pipeline):
    from alertd.domain.observations import TERMINAL

    assert titles(pipeline, MAIN, dd_order("stuck", "open", [], "0")) == []
    frame = {"type": "Account", "sub_type": "balance",
             "balance": [{"asset": "ada", "free": "0.05", "locked": "0"}]}
    assert len(titles(pipeline, MAIN, frame, "tiny")) == 1
    pipeline.flush()
    keys = frozenset(r.key for r in pipeline.rules.rules if r.name != "tiny")
    real = pipeline.store.clock
    pipeline.store.clock = lambda: real() + 100 * 86400
    assert pipeline.prune(TERMINAL, keys) == 2  # the stuck order, tiny's armed row
    assert pipeline.detector.book.order(MAIN.key, "stuck") is None


def test_a_level_rule_added_by_reload_fires_on_a_level_that_already_holds(pipeline, tmp_path):
    frame = {"type": "Account", "sub_type": "balance",
             "balance": [{"asset": "ada", "free": "300", "locked": "0"}]}
    assert titles(pipeline, MAIN, frame, "low") == []
    write(tmp_path / "rules" / "r.yaml", RULES + """
  - name: low
    on: balance
    when: {asset: ada, free: {lt: 500}}
    notify: [t]
    group_wait: 0
    title: "low {free}"
""")
    added = pipeline.swap_rules(load_rules(tmp_path / "rules", ["t"]))
    assert [a.title for a in added] == ["low 300"]
    assert pipeline.swap_rules(load_rules(tmp_path / "rules", ["t"])) == []  # said once
    assert titles(pipeline, MAIN, frame, "low") == []


def test_each_exchange_finds_its_rest_host_from_the_stream_url_or_rest_url():
    from alertd.exchanges import catch_up_for

    dd = Account("m", "deltadefi", "wss://stream.deltadefi.io/accounts/stream", api_key="k")
    assert catch_up_for(dd, "spot").base == "https://api.deltadefi.io"
    pinned = Account("m", "deltadefi", "wss://stream.x/accounts/stream", api_key="k",
                     rest_url="http://127.0.0.1:9/")
    assert catch_up_for(pinned, "spot").base == "http://127.0.0.1:9"
    sx = Account("d", "sodex", "wss://mainnet-gw.sodex.dev/ws", user="0xab", markets=("perps",))
    assert catch_up_for(sx, "perps").base == (
        "https://mainnet-gw.sodex.dev/api/v1/perps/accounts/0xab")


def test_a_resolved_notice_is_sent_once_when_a_level_rule_re_arms(tmp_path):
    write(tmp_path / "rules" / "r.yaml", """
rules:
  - name: low
    on: balance
    when: {asset: ada, free: {lt: 500}}
    rearm: {free: {gte: 550}}
    resolved: true
    notify: [t]
    group_wait: 0
    title: "Low {asset} on {account}"
  - name: flat
    on: position
    when: {size: {ne: 0}}
    resolved: {title: "{symbol} closed"}
    notify: [t]
    group_wait: 0
    title: "{symbol} open"
""")
    p = Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(tmp_path / "s.db"))

    def said(free: str) -> list[tuple[str, str, str]]:
        frame = {"type": "Account", "sub_type": "balance",
                 "balance": [{"asset": "ada", "free": free, "locked": "0"}]}
        return [(a.title, a.body, a.severity) for a in p.raw(MAIN, json.dumps(frame))]

    assert said("400") == [("Low ada on main", "free 400 (was -), locked 0, total 400", "info")]
    assert said("520") == []  # above the threshold, below the re-arm level: still low
    assert said("600") == [("Resolved: Low ada on main",
                            "now free 600 (was 520), total 600", "success")]
    assert said("700") == []  # once
    assert [t for t, _, _ in said("100")] == ["Low ada on main"]
    pos = sx("accountUpdate", {"E": 1, "P": [{"s": "BTC-USD", "sz": "0.5", "ep": "60000"}]})
    assert titles(p, PERPS, pos, "flat") == ["BTC-USD open"]
    flat = sx("accountUpdate", {"E": 2, "P": [{"s": "BTC-USD", "sz": "0", "ep": "60000"}]})
    assert [(a.title, a.body) for a in p.raw(PERPS, flat) if a.rule == "flat"] == [
        ("BTC-USD closed", "now flat 0 (was 0.5)")]


def test_a_reminder_repeats_what_still_holds_at_the_interval_and_stops_on_re_arm(tmp_path):
    now = [2_000_000_000.0]
    write(tmp_path / "rules" / "r.yaml", """
rules:
  - name: low
    on: balance
    when: {asset: ada, free: {lt: 500}}
    repeat: 4h
    resolved: true
    notify: [t]
    group_wait: 0
    title: "Low {asset}: {free}"
""")
    p = Pipeline(load_rules(tmp_path / "rules", ["t"]),
                 Store(tmp_path / "s.db", clock=lambda: now[0]))

    def balance(free: str) -> list[str]:
        frame = {"type": "Account", "sub_type": "balance",
                 "balance": [{"asset": "ada", "free": free, "locked": "0"}]}
        return [a.title for a in p.raw(MAIN, json.dumps(frame))]

    def remind_at(hours: float) -> list[str]:
        now[0] = 2_000_000_000.0 + hours * 3600
        return [a.title for a in p.remind()]

    assert balance("400") == ["Low ada: 400"]
    assert remind_at(3.9) == []
    assert balance("300") == []  # still low: quiet, the reminder keeps its own time
    assert remind_at(4) == ["Still: Low ada: 300"]
    assert remind_at(7.9) == []
    assert remind_at(8) == ["Still: Low ada: 300"]
    assert balance("900") == ["Resolved: Low ada: 900"]
    assert remind_at(20) == []


def test_repeat_takes_a_duration_on_a_level_rule(tmp_path):
    from alertd.common.errors import LoadError
    from alertd.common.timespec import duration

    assert [duration(v) for v in ("90s", "30m", "4h", "1d", 600, "4 hours", "2 min")] == [
        90, 1800, 14400, 86400, 600, 14400, 120]  # one grammar with rates: "4 hours" too
    assert [duration(v) for v in ("h", "-1h", "", "0", "4 fortnights")] == [None] * 5
    write(tmp_path / "rules" / "r.yaml", "rules:\n  - name: f\n    on: fill\n    repeat: 1h\n"
          "    notify: [t]\n    group_wait: 0\n")
    with pytest.raises(LoadError) as err:
        load_rules(tmp_path / "rules", ["t"])
    assert "r.yaml:4: rule 'f': 'repeat' applies to level rules" in str(err.value.problems[0])
