"""Durations run on a monotonic clock; the wall clock stepping back an hour (NTP, a VM
restored) holds up no group, no rate window and no housekeeping job."""

from __future__ import annotations

from alertd.delivery.ratelimit import Window, parse_rate
from alertd.rules.load import load_rules
from alertd.runtime.pipeline import Pipeline
from alertd.runtime.ticker import Ticker
from alertd.sim.frames import dd_balance
from alertd.storage.store import Store
from tests.conftest import MAIN, Clock, write

HOUR = 3600.0


def test_housekeeping_jobs_run_on_time_whatever_the_wall_clock_does():
    mono = Clock(100.0)
    ticker, ran = Ticker(mono), []
    ticker.every(15, lambda: ran.append(mono.now))
    mono.now += 14
    ticker.run_pending()
    assert ran == []
    for _ in range(3):
        mono.now += 15
        ticker.run_pending()
    assert ran == [129.0, 144.0, 159.0]


def test_a_group_is_released_on_time_after_the_wall_clock_steps_back(tmp_path):
    clock = Clock(1_790_000_000.0)
    write(tmp_path / "rules" / "r.yaml", """
rules:
  - name: low
    on: balance
    when: {free: {lt: 500}}
    group_wait: 2s
    notify: [t]
    title: "low {asset}"
""")
    p = Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(tmp_path / "s.db", clock=clock),
                 clock=clock)
    p.raw(MAIN, dd_balance("20", usdm="10"))
    assert p.release() == []
    clock.now -= HOUR  # the group was due 2 s after a time that is now an hour ahead
    assert p.due_in() == 0  # due now, not in an hour and two seconds
    released = p.release()
    assert [a.title for a in released] == ["low usdm (+1 more)"]


def test_a_rate_window_waits_one_period_at_most_after_the_wall_clock_steps_back():
    window = Window(parse_rate("2/10s"), sent=[5000.0, 5001.0])
    now = 5002.0 - HOUR
    assert window.room(now) == 0
    assert window.free_at(now) <= now + 10
