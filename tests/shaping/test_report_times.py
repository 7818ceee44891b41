"""Report times around daylight saving: a local time that does not exist (02:30 on the spring
day in Berlin) is due at the first instant after the gap (03:00 CEST), one that happens twice
(02:30 on the autumn day) at its first occurrence, and the periods follow one another with
no gap and no overlap, so every fill is in exactly one report."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alertd.rules.load import load_rules
from alertd.runtime.pipeline import Pipeline
from alertd.shaping.reports import parse_every
from alertd.sim.frames import sx, sx_order, sx_trade
from alertd.storage.store import Store
from tests.conftest import SPOT, Clock, write

BERLIN = ZoneInfo("Europe/Berlin")
MINUTE, HOUR, DAY = 60, 3600, 86400


def z(*args: int) -> float:
    """An instant written in UTC, so what is expected does not lean on the code under test."""
    return dt.datetime(*args, tzinfo=dt.UTC).timestamp()


SPRING = (z(2026, 3, 27, 12), z(2026, 3, 31, 12))
"""Around 2026-03-29, when Berlin's clocks go from 02:00 CET to 03:00 CEST (01:00 UTC)."""
AUTUMN = (z(2026, 10, 23, 12), z(2026, 10, 27, 12))
"""Around 2026-10-25, when they go back from 03:00 CEST to 02:00 CET (01:00 UTC)."""


def every_hour(window: tuple[float, float], minute: int, before: int = 0) -> list[float]:
    """Every hh:mm UTC from the last at the window's start (or `before` hours earlier) to
    its end."""
    first = window[0] - (window[0] - minute * MINUTE) % HOUR - before * HOUR
    return [first + i * HOUR for i in range(int((window[1] - first) // HOUR) + 1)]


def slots(schedule: str, window: tuple[float, float]) -> list[float]:
    """Each time the schedule's `last` takes in the window, in order; checks on the way that
    it is never after now and never goes back."""
    every = parse_every(schedule)
    seen: list[float] = []
    now = window[0]
    while now <= window[1]:
        last = every.last(now, BERLIN)
        assert last <= now, f"{schedule} at {now}: due {last - now:+.0f} s from now"
        if seen and last != seen[-1]:
            assert last > seen[-1], f"{schedule} at {now}: went back to {last}"
            assert last == now, f"{schedule}: the {last} report came {now - last:.0f} s late"
        if not seen or last != seen[-1]:
            seen.append(last)
        now += MINUTE
    return seen


def berlin_hour(t: float) -> int:
    """The hour on Berlin's clock, from the offsets it is known to have had (+1 in CET, +2 in
    CEST, changing at 01:00 UTC on the two days)."""
    summer = z(2026, 3, 29, 1) <= t < z(2026, 10, 25, 1)
    return (dt.datetime.fromtimestamp(t, dt.UTC).hour + (2 if summer else 1)) % 24


SCHEDULES = [
    ('day at "02:30"', SPRING, [z(2026, 3, 27, 1, 30), z(2026, 3, 28, 1, 30),
                                z(2026, 3, 29, 1, 0),  # 03:00 CEST: 02:30 does not exist
                                z(2026, 3, 30, 0, 30), z(2026, 3, 31, 0, 30)]),
    ('day at "02:30"', AUTUMN, [z(2026, 10, 23, 0, 30), z(2026, 10, 24, 0, 30),
                                z(2026, 10, 25, 0, 30),  # 02:30 CEST, not again at 02:30 CET
                                z(2026, 10, 26, 1, 30), z(2026, 10, 27, 1, 30)]),
    ('day at "08:00"', SPRING, [z(2026, 3, 27, 7), z(2026, 3, 28, 7), z(2026, 3, 29, 6),
                                z(2026, 3, 30, 6), z(2026, 3, 31, 6)]),
    ('sunday at "02:30"', SPRING, [z(2026, 3, 22, 1, 30), z(2026, 3, 29, 1, 0)]),
    ('sunday at "02:30"', AUTUMN, [z(2026, 10, 18, 0, 30), z(2026, 10, 25, 0, 30)]),
    ('monday at "02:30"', SPRING, [z(2026, 3, 23, 1, 30), z(2026, 3, 30, 0, 30)]),
    ('monday at "02:30"', AUTUMN, [z(2026, 10, 19, 0, 30), z(2026, 10, 26, 1, 30)]),
    ('hour at ":30"', SPRING, sorted([*every_hour(SPRING, 30), z(2026, 3, 29, 1, 0)])),
    ('hour at ":30"', AUTUMN, [t for t in every_hour(AUTUMN, 30)
                               if t != z(2026, 10, 25, 1, 30)]),  # the second 02:30
    ("2 hours", SPRING, sorted([*(t for t in every_hour(SPRING, 0, before=1)
                                  if berlin_hour(t) % 2 == 0),
                                z(2026, 3, 29, 1)])),  # 02:00 does not exist: 03:00 CEST
    ("2 hours", AUTUMN, [t for t in every_hour(AUTUMN, 0, before=1) if berlin_hour(t) % 2 == 0
                         and t != z(2026, 10, 25, 1)]),  # 02:00 CET: the second 02:00
    ("1 hours", AUTUMN, [t for t in every_hour(AUTUMN, 0) if t != z(2026, 10, 25, 1)]),
]


@pytest.mark.parametrize(("schedule", "window", "expected"), SCHEDULES,
                         ids=[f"{s}-{'spring' if w is SPRING else 'autumn'}"
                              for s, w, _ in SCHEDULES])
def test_report_times_around_daylight_saving(schedule, window, expected, local_zone):
    assert slots(schedule, window) == expected


def test_the_spring_day_report_is_due_at_03_00_not_20_minutes_ahead(local_zone):
    daily = parse_every('day at "02:30"')
    assert daily.last(z(2026, 3, 29, 0, 59), BERLIN) == z(2026, 3, 28, 1, 30)  # 01:59 CET
    assert daily.last(z(2026, 3, 29, 1, 0), BERLIN) == z(2026, 3, 29, 1, 0)  # 03:00 CEST
    assert daily.last(z(2026, 3, 29, 1, 10), BERLIN) == z(2026, 3, 29, 1, 0)  # not 01:30 UTC
    assert daily.last(z(2026, 3, 29, 1, 30), BERLIN) == z(2026, 3, 29, 1, 0)


def test_the_autumn_day_report_is_due_at_the_first_02_30_and_stays_there(local_zone):
    daily = parse_every('day at "02:30"')
    assert daily.last(z(2026, 10, 25, 0, 29), BERLIN) == z(2026, 10, 24, 0, 30)
    for now in (z(2026, 10, 25, 0, 30), z(2026, 10, 25, 1, 10),  # 02:10 CET, the second time
                z(2026, 10, 25, 1, 30), z(2026, 10, 25, 23, 0)):
        assert daily.last(now, BERLIN) == z(2026, 10, 25, 0, 30)


REPORT_RULES = """
rules:
  - name: fills
    on: fill
    notify: [t]
reports:
  - name: nightly
    every: {every}
    tz: Europe/Berlin
    notify: [t]
    include: [fills]
"""


@pytest.mark.parametrize(("schedule", "window", "per_day"), [
    ('day at "02:30"', SPRING, 1), ('day at "02:30"', AUTUMN, 1),
    ('hour at ":30"', SPRING, 24), ('hour at ":30"', AUTUMN, 24)],
    ids=["day-spring", "day-autumn", "hour-spring", "hour-autumn"])
def test_every_fill_is_in_exactly_one_report(tmp_path: Path, schedule, window, per_day,
                                             local_zone):
    """A fill every 10 minutes for four days, the reports checked after each: the fills the
    reports count add up to all fills up to the last report's end, and the change day has
    one 02:30 report (for `hour at`, one report for each of the 24 times its clock reads
    :30, the one that does not exist at 03:00 CEST, the one that happens twice once)."""
    clock = Clock(window[0])
    write(tmp_path / "rules" / "r.yaml", REPORT_RULES.replace("{every}", repr(schedule)))
    p = Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(tmp_path / "s.db", clock=clock),
                 clock=clock)
    p.raw(SPOT, sx("accountOrderUpdate", sx_order("NEW", "0", at=clock.now)))
    assert p.reports() == []  # first sight: only the schedule is recorded
    fills: list[float] = []
    counted, titles = 0, []
    while clock.now < window[1]:
        clock.now += 10 * MINUTE
        fills.append(clock.now)
        p.raw(SPOT, sx("accountTrade", sx_trade(len(fills), "0.0001", at=clock.now)))
        for report in p.reports():
            counted += int(re.search(r"Fills: (\d+)", report.body)[1])
            titles.append(report.title)
    last_end = parse_every(schedule).last(clock.now, BERLIN)
    first_start = parse_every(schedule).last(window[0], BERLIN)
    assert counted == sum(first_start < t <= last_end for t in fills)
    change = "2026-03-29" if window is SPRING else "2026-10-25"
    assert sum(f"to {change} " in t for t in titles) == per_day, titles
