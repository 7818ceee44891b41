"""The same fill said live and then by a REST catch-up is one fill, whatever id the catch-up
gives it (issue 16.13b). DeltaDeFi's stream and REST both key a fill by its execution
record's `id` (contracts/deltadefi: `order_execution_records[]` and `/accounts/trades` rows
are one OrderExecutionRecordResponse); a record under another id that would take the order's
fills past its `executed_base_qty` restates one already announced. SoDEX keys it by symbol and
trade id on both paths (`s`/`t` on the stream, `symbol`/`tradeID` over REST)."""

from __future__ import annotations

import json
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertd.exchanges.sodex.rest import trade_row
from alertd.rules.load import load_rules
from alertd.runtime.pipeline import Pipeline
from alertd.sim.frames import dd_balance, dd_order, sx, sx_order, sx_trade
from alertd.storage.store import Store
from tests.conftest import MAIN, SPOT, Clock, write

RULES = """
rules:
  - name: fills
    on: fill
    notify: [t]
    group_wait: 0
    title: "{trade_id} {qty} caught_up={caught_up}"
"""


def pipeline(state, tmp_path, clock: Clock) -> Pipeline:
    write(tmp_path / "rules" / "r.yaml", RULES)
    return Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(state, clock=clock),
                    clock=clock)


def titles(alerts) -> list[str]:
    return [a.title for a in alerts]


def test_a_deltadefi_fill_restated_by_rest_under_another_id_is_one_fill(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    live = dd_order("o1", "partially_filled", [("r1", "800")], "800", at=clock.now)
    assert titles(p.raw(MAIN, json.dumps(live))) == ["r1 800 caught_up=no"]
    clock.now += 300
    rest = dd_order("o1", "partially_filled", [("t-r1", "800")], "800", at=clock.now - 300)
    assert p.catch_up(MAIN, [rest], watched_since=clock.now) == []
    # then the order fills on while alertd is away: only the new record is news
    later = dd_order("o1", "closed", [("t-r1", "800"), ("t-r2", "1200")], "2000",
                     at=clock.now - 300)
    assert titles(p.catch_up(MAIN, [later], watched_since=clock.now)) == [
        "t-r2 1200 caught_up=yes"]
    assert titles(p.raw(MAIN, json.dumps(dd_order(
        "o1", "closed", [("r1", "800"), ("r2", "1200")], "2000", at=clock.now)))) == []


def test_a_record_ahead_of_executed_base_qty_waits_for_it_and_is_not_lost(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    ahead = dd_order("o1", "partially_filled", [("r1", "800"), ("r2", "200")], "800",
                     at=clock.now)
    assert titles(p.raw(MAIN, json.dumps(ahead))) == ["r1 800 caught_up=no"]
    caught = dd_order("o1", "partially_filled", [("r1", "800"), ("r2", "200")], "1000",
                      at=clock.now)
    assert titles(p.raw(MAIN, json.dumps(caught))) == ["r2 200 caught_up=no"]


def test_a_sodex_fill_said_live_and_by_rest_trades_is_one_fill(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    p.raw(SPOT, sx("accountOrderUpdate", sx_order("NEW", "0", at=clock.now)))
    assert titles(p.raw(SPOT, sx("accountTrade", sx_trade(5, "0.1", at=clock.now)))) == [
        "vBTC_vUSDC:5 0.1 caught_up=no"]
    row = {"tradeID": 5, "orderID": 7001, "clOrdID": "c-1", "symbol": "vBTC_vUSDC",
           "side": "BUY", "price": "60000", "quantity": "0.1", "fee": "0.6", "isMaker": False,
           "time": int(clock.now * 1000)}
    frame = {"channel": "accountTrade", "type": "update", "data": [trade_row(row)]}
    assert p.catch_up(SPOT, [frame], watched_since=clock.now + 60) == []


steps_strategy = st.lists(st.tuples(st.integers(0, 3), st.integers(0, 30), st.booleans()),
                          min_size=1, max_size=8)


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=steps_strategy)
def test_live_and_rest_ids_mixed_in_any_order_announce_what_was_executed(tmp_path_factory,
                                                                         steps):
    """Each frame lists every record so far, under the stream's ids or (over REST) other
    ids; after each, the fills announced add up to what the order executed, no more."""
    clock = Clock()
    where = tmp_path_factory.mktemp("restated")
    p = pipeline(where / "s.db", where, clock)  # SQLite only: 60 examples
    p.raw(MAIN, dd_balance("100"))  # watched from now: a catch-up after this is news
    sizes: list[str] = []
    executed, announced = Decimal(0), Decimal(0)
    for new, extra, over_rest in steps:
        sizes += [str(len(sizes) + 1) for _ in range(new)]
        executed = max(executed, sum(map(Decimal, sizes)) + extra)
        prefix = "t-r" if over_rest else "r"
        frame = dd_order("o1", "partially_filled",
                         [(f"{prefix}{i}", q) for i, q in enumerate(sizes)], str(executed),
                         qty="100000", at=clock.now)
        out = p.catch_up(MAIN, [frame], watched_since=clock.now) if over_rest \
            else p.raw(MAIN, json.dumps(frame))
        announced += sum((Decimal(a.title.split()[1]) for a in out), Decimal(0))
        assert announced == executed
