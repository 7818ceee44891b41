"""A new order costs no SELECT (issue 19): detection asks a filter of every order and fill id
in the state file first; a "perhaps" still reads the file, so an order known from before a
restart, or beyond the cache, is found as before."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from alertd.common.bloom import Bloom
from alertd.detect import orders
from alertd.rules.load import load_rules
from alertd.runtime.pipeline import Pipeline
from alertd.sim.frames import dd_order
from alertd.storage.store import Store
from tests.conftest import MAIN, Clock, write

RULES = """
rules:
  - name: fills
    on: fill
    notify: [t]
    group_wait: 0
    title: "{trade_id} {qty}"
"""


def pipeline(tmp_path, clock: Clock) -> Pipeline:
    write(tmp_path / "rules" / "r.yaml", RULES)
    return Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(tmp_path / "s.db", clock=clock),
                    clock=clock)


def frame(p: Pipeline, *args, **kw) -> list[str]:
    raw = json.dumps(dd_order(*args, at=p.clock(), **kw))
    return [a.title for a in p.raw(MAIN, raw)]


@settings(max_examples=50, deadline=None)
@given(st.sets(st.tuples(st.text(max_size=12), st.text(max_size=40)), max_size=300))
def test_whatever_was_added_is_always_perhaps_there(keys):
    bloom = Bloom(keys, bits=1 << 12)
    assert all(key in bloom for key in keys)


def test_a_new_order_reads_nothing_from_the_file(tmp_path):
    p = pipeline(tmp_path, Clock())
    said: list[str] = []
    p.store.raw.set_trace_callback(said.append)
    for n in range(20):
        frame(p, f"new-{n}", "open", [], "0")
    p.flush()
    assert not [s for s in said if s.startswith("SELECT") and "FROM orders" in s]


def test_orders_known_before_a_restart_and_beyond_the_cache_are_still_found(tmp_path,
                                                                           monkeypatch):
    monkeypatch.setattr(orders, "ORDER_CACHE", 5)
    clock = Clock()
    p = pipeline(tmp_path, clock)
    assert frame(p, "o1", "partially_filled", [("r1", "500")], "500") == ["r1 500"]
    for n in range(10):  # pushes o1 out of the cache
        frame(p, f"other-{n}", "open", [], "0")
    assert frame(p, "o1", "partially_filled", [("r1", "500")], "500") == []
    p.flush()
    p.store.close()
    again = pipeline(tmp_path, clock)
    assert frame(again, "o1", "closed", [("r1", "500"), ("r2", "1500")], "2000") == ["r2 1500"]
