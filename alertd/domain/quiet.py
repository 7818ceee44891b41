"""Quiet hours: a daily window in a time zone during which alerts below `failure` wait.

What waits is sent as one digest when the window ends; a failure goes through at once. The
window is read in its own time zone (standard library `zoneinfo`), so it follows daylight
saving time, and it may run over midnight (23:00 to 07:00).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from alertd.common.timespec import ZONE_HINT, time_of_day, zone

KEYS = ("from", "to", "tz")


@dataclass(frozen=True, slots=True)
class Quiet:
    """From `start` to `end`, local time in `tz`, every day."""

    start: dt.time
    end: dt.time
    tz: ZoneInfo

    def until(self, now: float) -> float | None:
        """When the quiet that holds at `now` ends (epoch seconds), or None if it does not."""
        local = dt.datetime.fromtimestamp(now, self.tz)
        t, day = local.time(), local.date()
        if self.start < self.end:
            inside = self.start <= t < self.end
        else:
            inside = t >= self.start or t < self.end
            if t >= self.start:
                day += dt.timedelta(days=1)
        if not inside:
            return None
        return dt.datetime.combine(day, self.end, tzinfo=self.tz).timestamp()

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M} {self.tz.key}"


class QuietError(ValueError):
    """What is wrong with a `quiet:` setting, in words for its file:line message."""


def parse_quiet(spec: Any) -> Quiet:
    """`{from: "23:00", to: "07:00", tz: Europe/Berlin}` (tz defaults to UTC)."""
    if not isinstance(spec, dict) or not {"from", "to"} <= set(spec) or set(spec) - set(KEYS):
        raise QuietError('quiet is a mapping like {from: "23:00", to: "07:00", '
                         'tz: Europe/Berlin}')
    times = []
    for key in ("from", "to"):
        when = time_of_day(spec[key])
        if when is None:
            raise QuietError(f"quiet: '{key}' is a time of day as HH:MM, such as \"23:00\", "
                             f"not {spec[key]!r}")
        times.append(when)
    if times[0] == times[1]:
        raise QuietError("quiet: 'from' and 'to' are the same time; remove quiet to never hold")
    name = str(spec.get("tz", "UTC"))
    tz = zone(name)
    if tz is None:
        raise QuietError(f"quiet: unknown time zone '{name}'; {ZONE_HINT}")
    return Quiet(times[0], times[1], tz)
