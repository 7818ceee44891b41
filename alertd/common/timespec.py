"""The one grammar for times people write in rule and config files: durations (`90s`, `30m`,
`4h`, `1d`), rate periods (`min`, `10s`, `hour`), times of day (`23:00`) and time zones
(IANA names). Group waits, reminders, rates, quiet hours and report schedules all read them
here, so `4h` or `08:00` means one thing wherever it is written."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UNITS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600,
         "hour": 3600, "d": 86400, "day": 86400}
_AMOUNT = r"(\d+(?:\.\d+)?|\.\d+)"
_UNIT = r"(s|sec|second|m|min|minute|h|hour|d|day)s?"
_DURATION = re.compile(_AMOUNT + r"\s*(?:" + _UNIT + ")?")
_PERIOD = re.compile(_AMOUNT + r"?\s*" + _UNIT)
_CLOCK = re.compile(r"([01]?\d|2[0-3]):([0-5]\d)")
LONGEST = 365 * 86400.0


def duration(value: Any) -> float | None:
    """`90s`, `30m`, `4h`, `1d` (or a number of seconds) in seconds, above 0 and below a
    year; None if it is not one."""
    match = _DURATION.fullmatch(str(value).strip().lower())
    if match is None:
        return None
    seconds = float(match[1]) * UNITS[match[2] or "s"]
    return seconds if 0 < seconds < LONGEST else None


def period(value: Any) -> float | None:
    """The period of a rate: `min`, `hour`, `s`, `10s`, `2 minutes`; None if it is not one."""
    match = _PERIOD.fullmatch(str(value).strip().lower())
    if match is None:
        return None
    seconds = float(match[1] or 1) * UNITS[match[2]]
    return seconds if 0 < seconds < LONGEST else None


def time_of_day(value: Any) -> dt.time | None:
    """`23:00`, `7:05` as a time; None if it is not one (YAML files keep it as text)."""
    match = _CLOCK.fullmatch(str(value).strip())
    return None if match is None else dt.time(int(match[1]), int(match[2]))


def zone(name: Any) -> ZoneInfo | None:
    """An IANA time zone by name; None if there is none by that name."""
    try:
        return ZoneInfo(str(name))
    except (ZoneInfoNotFoundError, ValueError):
        return None


ZONE_HINT = "use an IANA name such as Europe/Berlin, America/New_York or UTC"
