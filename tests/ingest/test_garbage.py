"""Property: garbage between valid frames changes nothing but the drop counters."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from alertd.domain.observations import Source
from alertd.rules.load import load_rules
from alertd.runtime.health import BURST
from alertd.runtime.pipeline import Pipeline
from alertd.sim.frames import dd_balance, dd_order, dd_points, sx, sx_order, sx_trade
from alertd.storage.store import Store
from tests.conftest import write
from tests.runtime.test_pipeline import RULES

MAIN = Source("main", "deltadefi", "spot")
SPOT = Source("desk", "sodex", "spot")
VALID = [
    (MAIN, json.dumps(dd_order("o1", "open", [], "0"))),
    (MAIN, json.dumps(dd_order("o1", "partially_filled", [("r1", "800")], "800"))),
    (MAIN, dd_balance("450")),
    (SPOT, sx("accountOrderUpdate", sx_order("NEW", "0"))),
    (SPOT, sx("accountTrade", sx_trade(1, "0.2"))),
    (MAIN, json.dumps(dd_points("100", "silver"))),
    (MAIN, json.dumps(dd_order("o1", "closed", [("r1", "800"), ("r2", "1200")], "2000"))),
    (MAIN, json.dumps(dd_points("300", "gold"))),
    (SPOT, sx("accountTrade", sx_trade(2, "0.3"))),
]

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner,
                                                                max_size=4), max_leaves=12)


CHECKED = {  # fields each frame's schema constrains
    "order": ["id", "status", "symbol", "side", "base_qty", "executed_base_qty",
              "order_execution_records"],
    "dlta_points": ["new_total", "league", "delta"],
    "data": ["i", "s", "S", "X", "t", "p", "q"],
}


@st.composite
def near_miss(draw) -> str:
    """A valid frame with one checked field made wrong: the hardest garbage to spot."""
    _, text = draw(st.sampled_from(VALID))
    frame = json.loads(text)
    wrong = {"wrong": draw(json_values)}  # no checked field may be an object
    if "balance" in frame:
        frame["balance"][draw(st.integers(0, 1))][draw(st.sampled_from(["asset", "free"]))] = wrong
        return json.dumps(frame)
    part = next(k for k in CHECKED if k in frame)
    body = frame[part]
    body[draw(st.sampled_from([k for k in CHECKED[part] if k in body]))] = wrong
    return json.dumps(frame)


garbage = st.one_of(
    st.binary(max_size=200), st.text(max_size=200), json_values.map(json.dumps), near_miss(),
    st.sampled_from(['{"type":"Account","sub_type":"order_info"}', '{"channel":"x"}', "[]"]))


def run(tmp, frames: list[tuple[Source, str | bytes]]) -> tuple[list[str], Pipeline]:
    rules_dir = tmp / "rules"
    if not rules_dir.exists():
        write(rules_dir / "r.yaml", RULES)
    pipeline = Pipeline(load_rules(rules_dir, ["t"]), Store(":memory:"))
    return [a.title for src, raw in frames for a in pipeline.raw(src, raw)], pipeline


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, len(VALID)), st.sampled_from([MAIN, SPOT]), garbage),
                max_size=40))
def test_garbage_never_changes_the_alerts_of_the_valid_frames(tmp_path, noise):
    expected, _ = run(tmp_path, VALID)
    mixed = list(VALID)
    for position, src, junk in sorted(noise, key=lambda n: -n[0]):
        mixed.insert(position, (src, junk))
    got, pipeline = run(tmp_path, mixed)
    assert got == expected
    assert sum(pipeline.drops.counts.values()) == len(noise)


def test_a_burst_of_invalid_frames_is_one_stream_event_per_hour(tmp_path):
    write(tmp_path / "rules" / "r.yaml", "rules:\n  - name: s\n    on: stream\n"
          "    when: {status: invalid_messages}\n    notify: [t]\n    group_wait: 0\n"
          "    message: '{reason}'\n")
    pipeline = Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(":memory:"))
    bad = '{"type":"Account","sub_type":"balance","balance":[{"asset":"ada","free":"x"}]}'
    fired = [len(pipeline.raw(MAIN, bad)) for _ in range(BURST * 5)]
    assert fired == [0] * (BURST - 1) + [1] + [0] * (BURST * 4)
    alert = pipeline.outbox.store.db.execute("SELECT body FROM outbox").fetchone()[0]
    assert alert.startswith("3 invalid frames from deltadefi account main (spot) in 10 min")
    assert "balance/0" in alert
