"""A live frame's time is a hint (issue 16.10): a stamp in seconds, 0, 1970 or far in the
future is replaced by the receive time, so it cannot make a fill look older than the 30-day
horizon; what is judged history by a believable stamp is counted (`history`, shown by
`alertd status`) and logged at most once a minute, never dropped unsaid."""

from __future__ import annotations

import json
import logging

import pytest

from alertd.domain.observations import iso
from alertd.rules.load import load_rules
from alertd.runtime.health import save_health
from alertd.runtime.pipeline import Pipeline
from alertd.sim.frames import dd_order, sx, sx_order, sx_trade
from alertd.storage.store import Store
from tests.conftest import MAIN, SPOT, Clock, write

DAY = 86400.0
RULES = """
rules:
  - name: fills
    on: fill
    notify: [t]
    group_wait: 0
    title: "fill {trade_id} {qty}"
    message: "{time}"
  - name: orders
    on: order
    notify: [t]
    group_wait: 0
    title: "order {order_id} {status}"
"""


def pipeline(tmp_path, clock: Clock) -> Pipeline:
    write(tmp_path / "rules" / "r.yaml", RULES)
    return Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(tmp_path / "s.db", clock=clock),
                    clock=clock)


def sodex_trade(trade_id: int, stamp_value: int, clock: Clock) -> str:
    """An accountTrade stamped `stamp_value` (both `E` and `T`) for order 7001."""
    return sx("accountTrade", {**sx_trade(trade_id, "0.1", at=clock.now), "E": stamp_value,
                               "T": stamp_value})


@pytest.mark.parametrize("name, stamp_of", [
    ("seconds", lambda now: int(now)),
    ("zero", lambda now: 0),
    ("1970", lambda now: 86_400_000),
    ("microseconds", lambda now: int(now * 1_000_000)),
    ("two days ahead", lambda now: int((now + 2 * DAY) * 1000)),
])
def test_a_live_sodex_fill_with_an_implausible_stamp_is_announced_at_receive_time(
        tmp_path, name, stamp_of):
    clock = Clock()
    p = pipeline(tmp_path, clock)
    p.raw(SPOT, sx("accountOrderUpdate", sx_order("NEW", "0", at=clock.now)))
    got = p.raw(SPOT, sodex_trade(1, stamp_of(clock.now), clock))
    assert [(a.title, a.body) for a in got] == [("fill vBTC_vUSDC:1 0.1", iso(None, clock.now))]
    assert p.drops.counts == {}


def test_a_live_deltadefi_fill_stamped_1970_or_year_1_is_announced(tmp_path):
    clock = Clock()
    p = pipeline(tmp_path, clock)
    frame = dd_order("o1", "partially_filled", [("r1", "800")], "800", at=clock.now)
    frame["order"]["updated_at"] = "1970-01-01T00:00:00Z"
    frame["order"]["order_execution_records"][0]["created_at"] = "0001-01-01T00:00:00Z"
    got = p.raw(MAIN, json.dumps(frame))
    assert [(a.title, a.body) for a in got] == [
        ("fill r1 800", iso(None, clock.now)), ("order o1 partially_filled", got[1].body)]
    assert p.drops.counts == {}


def test_what_a_believable_stamp_puts_past_the_horizon_is_counted_and_logged_once(
        tmp_path, caplog):
    clock = Clock()
    p = pipeline(tmp_path, clock)
    p.raw(SPOT, sx("accountOrderUpdate", sx_order("NEW", "0", at=clock.now)))
    old = int((clock.now - 40 * DAY) * 1000)  # 40 days ago: a restatement, not news
    with caplog.at_level(logging.WARNING, logger="alertd"):
        for trade_id in (1, 2, 3):
            assert p.raw(SPOT, sodex_trade(trade_id, old, clock)) == []
    assert p.drops.counts[(SPOT.key, "history")] == 3
    said = [r.getMessage() for r in caplog.records if "(history)" in r.getMessage()]
    assert len(said) == 1 and "fill vBTC_vUSDC:1 of order 7001" in said[0]
    save_health(p.store, [], p.drops.unsaved())  # what `alertd status` reads
    assert p.store.db.execute("SELECT count FROM drops WHERE source=? AND reason='history'",
                              (SPOT.key,)).fetchone() == (3,)
    fresh = p.raw(SPOT, sodex_trade(4, int(clock.now * 1000), clock))
    assert [a.title for a in fresh] == ["fill vBTC_vUSDC:4 0.1"]


def test_an_old_deltadefi_order_change_is_counted_as_history_too(tmp_path):
    clock = Clock()
    p = pipeline(tmp_path, clock)
    frame = dd_order("o9", "closed", [("r9", "2000")], "2000", at=clock.now - 45 * DAY)
    assert p.raw(MAIN, json.dumps(frame)) == []
    assert p.drops.counts[(MAIN.key, "history")] == 2  # the fill and the order change


def test_a_first_look_s_history_is_the_baseline_not_counted(tmp_path):
    clock = Clock()
    p = pipeline(tmp_path, clock)
    old = [sx_trade(i, "0.1", at=clock.now - 40 * DAY) for i in (1, 2)]
    assert p.raw(SPOT, sx("accountTrade", old, "snapshot")) == []
    assert p.drops.counts == {}


def test_the_rule_for_a_stamp():
    from alertd.domain.observations import plausible, stamp

    now = Clock().now
    assert plausible(now - 100 * DAY, now) and plausible(now + DAY, now)
    assert not plausible(now + DAY + 1, now) and not plausible(1_577_836_799.0, now)
    assert stamp(int(now * 1000) - 5000, now) == (iso(int(now * 1000) - 5000, now), now - 5)
    assert stamp("2026-11-23T05:16:00Z", now)[0] == "2026-11-23T05:16:00Z"
    for wrong in (int(now), 0, "1970-01-01T00:00:00Z", "not a time", None, True):
        assert stamp(wrong, now) == (iso(None, now), now)
