"""Memory per subject is bounded (issue 16.16): 400k distinct assets once grew the process by
380 MB for good, as detection remembered every level subject it had looked at. Each
structure that grows with subjects or streams has a bound, and what falls out of one costs
at most an extra level event, never a repeated alert."""

from __future__ import annotations

from alertd.detect import detector
from alertd.detect.orders import ORDER_CACHE
from alertd.domain.observations import Drop, Source
from alertd.rules.load import load_rules
from alertd.runtime import health
from alertd.runtime.health import BurstWatch, DropLog
from alertd.runtime.pipeline import Pipeline
from alertd.sim.frames import sx, sx_trade
from alertd.storage.store import Store
from tests.conftest import SPOT, Clock, write

FRAMES = 50_000
LOOKED_AT = 10_000
"""Level subjects detection remembers as looked at (`detector.LOOKED_AT`)."""
MAX_KEYS = 1_000
"""Streams × reasons a DropLog, and streams a BurstWatch, keep (`health.MAX_KEYS`)."""
RULES = """
rules:
  - name: low
    on: balance
    when: {free: {lt: 5}}
    notify: [t]
    group_wait: 0
    title: "low {asset} {free}"
"""


def balance(asset: str, total: str, clock: Clock) -> str:
    ms = int(clock.now * 1000)
    return sx("accountUpdate", {"E": ms, "T": ms, "h": 1,
                                "B": [{"i": 0, "a": asset, "t": total, "l": "0"}]})


def trade(n: int, clock: Clock) -> str:
    """A fill of a new order in a new symbol."""
    return sx("accountTrade", {**sx_trade(n, "0.1", at=clock.now), "s": f"S{n}_vUSDC",
                               "i": 900_000 + n})


def test_50k_new_assets_keep_memory_bounded_and_each_alerts_once(tmp_path):
    write(tmp_path / "rules" / "r.yaml", RULES)
    clock = Clock()
    p = Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(tmp_path / "s.db", clock=clock),
                 clock=clock)
    fired = 0
    for n in range(FRAMES):
        fired += len(p.raw(SPOT, balance(f"A{n}", "1", clock)))
        if n % 10 == 0:
            p.raw(SPOT, trade(n, clock))
        if n % 1000 == 0:
            clock.now += 1
            p.flush()
    assert fired == FRAMES  # a balance rule fired once per subject
    assert len(p.detector._looked_at) <= LOOKED_AT
    book = p.detector.book
    assert len(book._orders) <= ORDER_CACHE and len(book._fills) <= ORDER_CACHE
    assert len(p.drops.examples) <= MAX_KEYS and len(p.bursts._recent) <= MAX_KEYS
    assert len(p.watched._known) <= 2
    assert (detector.LOOKED_AT, health.MAX_KEYS) == (LOOKED_AT, MAX_KEYS)
    # A0 fell out of what is remembered as looked at: back, it says nothing twice
    assert p.raw(SPOT, balance("A0", "1", clock)) == []
    assert p.raw(SPOT, balance("A0", "2", clock)) == []  # still low: no repeat
    assert p.raw(SPOT, balance("A0", "9", clock)) == []  # recovered: re-armed
    assert [a.title for a in p.raw(SPOT, balance("A0", "3", clock))] == ["low A0 3"]
    assert p.store.db.execute("SELECT COUNT(*) FROM outbox").fetchone() == (FRAMES + 1,)


def test_drop_counts_of_many_streams_stay_bounded_and_none_is_lost():
    drops, saved = DropLog(), 0
    for n in range(3 * MAX_KEYS):
        drops.add(Source(f"a{n}", "sodex", "spot"), Drop("not_json", "x"))
        if n % 100 == 99:
            saved += sum(count for _, _, count, _ in drops.unsaved())
    drops.add(Source("last", "sodex", "spot"), Drop("not_json", "x"))
    saved += sum(count for _, _, count, _ in drops.unsaved())
    assert saved == 3 * MAX_KEYS + 1
    drops.add(Source("after", "sodex", "spot"), Drop("not_json", "x"))
    assert len(drops.counts) <= MAX_KEYS and len(drops.examples) <= MAX_KEYS
    bursts = BurstWatch(Clock())
    for n in range(3 * MAX_KEYS):
        bursts.add(f"a{n}")
    assert max(len(bursts._recent), len(bursts._counts), len(bursts._reported)) <= MAX_KEYS
