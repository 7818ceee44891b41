"""Scheduled reports: a summary of a period (fills per symbol, balances, points, alertd's own
health) sent on a schedule, written in rule files under `reports:`.

A report is due at the last scheduled time at or before now, computed in its time zone from
the clock passed in (the runtime's ticker only wakes the check, every 20 s on a monotonic
clock; a wall-clock scheduler could not remember a run missed while the process was
down). The state file records the last period reported, in the transaction that queues
the report, so a report is never sent twice, and one missed while alertd was down goes out
once on start, marked late.
A section that cannot be rendered (a stored amount no sum can hold) says so in the report
and in the log; the rest of the report still goes out, and the schedule goes on.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any
from zoneinfo import ZoneInfo

from alertd.common.timespec import ZONE_HINT, time_of_day, zone
from alertd.domain.alerts import Alert
from alertd.domain.observations import EXACT
from alertd.storage.store import Store, write_failure

log = logging.getLogger("alertd")

REPORT_KEYS = ("name", "every", "tz", "notify", "include")
SECTIONS = ("fills", "balances", "points", "health")
LATE = 600.0
"""A report sent this long after its time says "(late)"."""
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_EVERY = re.compile(r"(?:(?P<n>\d+) hours|(?P<unit>day|hour|" + "|".join(WEEKDAYS) +
                    r"))(?: at \"?(?P<at>[0-9:]+)\"?)?")


class ReportError(ValueError):
    """What is wrong with a report's setting, in words for its file:line message."""


@dataclass(frozen=True, slots=True)
class Every:
    """When a report is due: `day at 08:00`, `monday at 09:00`, `hour at :30`, `6 hours`."""

    unit: str
    at: dt.time = dt.time(0, 0)
    hours: int = 0

    def last(self, now: float, tz: ZoneInfo) -> float:
        """The latest scheduled time at or before `now` (epoch seconds).

        The schedule is a list of local clock times (each day's `at`, each hour's `:MM`,
        every N hours from midnight); each is one instant (`instant`), later times never
        earlier instants, so the periods between them follow one another without a gap and
        a report is never due before its time."""
        local = dt.datetime.fromtimestamp(now, tz).replace(tzinfo=None)
        for wall in self._walls(local):
            slot = instant(wall, tz)
            if slot <= now:
                return slot
        raise AssertionError(f"no {self} time in the two weeks before {local}")  # unreachable

    def _walls(self, local: dt.datetime) -> Iterator[dt.datetime]:
        """The schedule's local clock times from a little after `local` backwards, far enough
        that one of them is an instant at or before it (a day on either side covers a clock
        going back, or a day skipped as Samoa's was)."""
        if self.unit == "hour":
            wall = local.replace(minute=self.at.minute, second=0, microsecond=0)
            for back in range(-2, 50):
                yield wall - dt.timedelta(hours=back)
            return
        for back in range(-1, 16):
            day = local.date() - dt.timedelta(days=back)
            if self.unit == "hours":
                for hour in reversed(range(0, 24, self.hours)):
                    yield dt.datetime.combine(day, dt.time(hour))
            elif self.unit == "day" or day.weekday() == WEEKDAYS.index(self.unit):
                yield dt.datetime.combine(day, self.at)


def instant(wall: dt.datetime, tz: ZoneInfo) -> float:
    """The instant (epoch seconds) a local clock time names in `tz`: a time that happens
    twice as the clocks go back is its first occurrence (02:30 CEST, not 02:30 CET, on the
    autumn day in Berlin); one the clocks skip is the first instant after the gap (02:30 on
    the spring day is 03:00 CEST), which later clock times never precede."""
    first = wall.replace(tzinfo=tz, fold=0).timestamp()  # the earlier of two, if there are
    if dt.datetime.fromtimestamp(first, tz).replace(tzinfo=None) == wall:
        return first
    # In a gap, fold=0 reads the wall time with the offset before it and fold=1 with the one
    # after; the change lies between the two instants: find its second.
    lo = math.floor(wall.replace(tzinfo=tz, fold=1).timestamp())
    hi = math.ceil(first)
    before = dt.datetime.fromtimestamp(lo, tz).utcoffset()
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if dt.datetime.fromtimestamp(mid, tz).utcoffset() == before:
            lo = mid
        else:
            hi = mid
    return float(hi)


def parse_every(text: Any) -> Every:
    match = _EVERY.fullmatch(" ".join(str(text).lower().split()))
    if match is None:
        raise ReportError(f"every: {text!r} is not a schedule; write day at \"08:00\", "
                          "monday at \"09:00\", hour at \":30\" or 6 hours")
    if match["n"]:
        hours = int(match["n"])
        if not 1 <= hours <= 24 or match["at"]:
            raise ReportError("every: N hours takes 1 to 24 hours and no 'at'")
        return Every("hours", hours=hours)
    unit, at = match["unit"], match["at"]
    if unit == "hour":
        minute = re.fullmatch(r":?([0-5]\d)", at or ":00")
        if minute is None:
            raise ReportError("every: hour at \":MM\" takes the minute, such as \":30\"")
        return Every("hour", dt.time(0, int(minute[1])))
    when = time_of_day(at or "")
    if when is None:
        raise ReportError(f"every: {unit} at \"HH:MM\" needs the time of day, such as "
                          f"{unit} at \"08:00\"")
    return Every(unit, when)


@dataclass(frozen=True)
class Report:
    name: str
    every: Every
    tz: ZoneInfo
    notify: tuple[str, ...]
    include: tuple[str, ...] = SECTIONS
    file: str = ""
    line: int = 0


def parse_report(item: dict[str, Any], known: set[str] | None) -> Report:
    """One entry of `reports:`; raises ReportError naming the key at fault (`.key`)."""
    def fail(key: str, message: str) -> ReportError:
        error = ReportError(message)
        error.key = key  # type: ignore[attr-defined]
        return error

    unknown = [k for k in item if k not in REPORT_KEYS]
    if unknown:
        raise fail(unknown[0], f"unknown report key '{unknown[0]}'; expected one of: "
                   f"{', '.join(REPORT_KEYS)}")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        raise fail("name", "every report needs a 'name'")
    try:
        every = parse_every(item.get("every", ""))
    except ReportError as exc:
        raise fail("every", f"report '{name}': {exc}") from None
    tz = zone(item.get("tz", "UTC"))
    if tz is None:
        raise fail("tz", f"report '{name}': unknown time zone '{item.get('tz')}'; {ZONE_HINT}")
    notify = item.get("notify")
    notify = [notify] if isinstance(notify, str) else notify
    if not isinstance(notify, list) or not notify:
        raise fail("notify", f"report '{name}': 'notify' lists notifier names from the config")
    missing = [n for n in notify if known is not None and n not in known]
    if missing:
        raise fail("notify", f"report '{name}': unknown notifier '{missing[0]}'; the config "
                   f"defines: {', '.join(sorted(known or ())) or 'none'}")
    include = item.get("include", list(SECTIONS))
    include = [include] if isinstance(include, str) else include
    if not isinstance(include, list) or not include or any(s not in SECTIONS for s in include):
        raise fail("include", f"report '{name}': include lists sections from: "
                   f"{', '.join(SECTIONS)}")
    return Report(name, every, tz, tuple(map(str, notify)), tuple(include))


def due(report: Report, store: Store) -> tuple[float, float, bool] | None:
    """(period start, period end, late) if a report is due now, else None. The first time a
    report is seen only its schedule is recorded: nothing happened before it existed."""
    now = store.clock()
    end = report.every.last(now, report.tz)
    key = f"report:{report.name}"
    row = store.db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
    if row is None or float(row[0]) >= end:
        if row is None:
            store.db.execute("INSERT INTO meta VALUES (?, ?)", (key, repr(end)))
        return None
    store.db.execute("UPDATE meta SET value=? WHERE key=?", (repr(end), key))
    return float(row[0]), end, now - end > LATE


def render(report: Report, store: Store, start: float, end: float, late: bool,
           streams: Callable[[], list[str]] | None = None) -> Alert:
    """The report's message over the period; reads the state file only."""
    def when(t: float) -> str:
        return f"{dt.datetime.fromtimestamp(t, report.tz):%Y-%m-%d %H:%M}"

    title = (f"Report {report.name}: {when(start)} to {when(end)} {report.tz.key}"
             + (" (late)" if late else ""))
    sections: dict[str, Callable[[], str]] = {
        "fills": lambda: _fills(store, start, end), "balances": lambda: _balances(store),
        "points": lambda: _points(store), "health": lambda: _health(store, start, end, streams)}
    parts = [_section(report, name, sections[name]) for name in SECTIONS
             if name in report.include]
    return Alert(rule=f"report:{report.name}", kind="report", account="-", severity="info",
                 title=title, body="\n".join(parts), notify=report.notify)


def _section(report: Report, name: str, make: Callable[[], str]) -> str:
    """One section, or a line saying it failed (logged): a report whose data one section
    cannot show is still sent, and its schedule is not held back by it."""
    try:
        return make()
    except Exception as exc:
        if write_failure(exc):
            raise
        log.error("report %s: the %s section could not be rendered (%s: %s)", report.name,
                  name, type(exc).__name__, str(exc)[:200], exc_info=True)
        return (f"{name.capitalize()}: could not be rendered ({type(exc).__name__}); "
                "see alertd's log")


def _fills(store: Store, start: float, end: float) -> str:
    """Fills per account, symbol and side; summed exactly (the default context rounds a total
    to 28 digits)."""
    rows = store.db.execute("SELECT account, symbol, side, qty, quote, fee, fee_asset FROM "
                            "fill_log WHERE time > ? AND time <= ? ORDER BY account, symbol, "
                            "side", (start, end)).fetchall()
    totals: dict[tuple[str, str, str], list[Any]] = {}
    with localcontext(EXACT):
        for account, symbol, side, qty, quote, fee, fee_asset in rows:
            t = totals.setdefault((account, symbol, side), [0, Decimal(0), Decimal(0), {}])
            t[0] += 1
            t[1] += Decimal(qty)
            t[2] += Decimal(quote or 0)
            if fee is not None:
                t[3][fee_asset or ""] = t[3].get(fee_asset or "", Decimal(0)) + Decimal(fee)
    lines = [f"Fills: {len(rows)}"]
    for (account, symbol, side), (n, qty, quote, fees) in totals.items():
        paid = ", ".join(f"{v} {k}".strip() for k, v in fees.items()) or "none"
        lines.append(f"  {account} {symbol} {side}: {n} fills, volume {qty} ({quote} quote), "
                     f"fees {paid}")
    return "\n".join(lines)


def _balances(store: Store) -> str:
    rows = store.db.execute("SELECT subject, a, b FROM levels WHERE subject LIKE '%/balance/%' "
                            "ORDER BY subject").fetchall()
    lines = ["Balances:"]
    for subject, free, total in rows:
        if total is not None and Decimal(total) == 0:
            continue
        account_market, asset = subject.split("/balance/", 1)
        lines.append(f"  {account_market} {asset.upper()}: free {free}, total {total}")
    return "\n".join(lines if len(lines) > 1 else ["Balances: none seen yet"])


def _points(store: Store) -> str:
    rows = store.db.execute("SELECT subject, a, b FROM levels WHERE subject LIKE '%/points' "
                            "ORDER BY subject").fetchall()
    lines = [f"  {s.removesuffix('/points')}: {total} points, league {league or '-'}"
             for s, total, league in rows]
    return "\n".join(["Points:", *lines] if lines else ["Points: none seen yet"])


def _health(store: Store, start: float, end: float,
            streams: Callable[[], list[str]] | None) -> str:
    dead = store.db.execute("SELECT COUNT(*) FROM outbox WHERE status='dead' AND done_at > ? "
                            "AND done_at <= ?", (start, end)).fetchone()[0]
    drops = store.db.execute("SELECT COALESCE(SUM(count), 0) FROM drops").fetchone()[0]
    pending = store.db.execute("SELECT COUNT(*) FROM outbox WHERE status='pending'").fetchone()[0]
    states = streams() if streams is not None else [
        f"{s} {state}" for s, state in store.db.execute(
            "SELECT source, state FROM health ORDER BY source")]
    return (f"Health: streams {', '.join(states) or 'none'}; alerts given up on in the period "
            f"{dead}; pending now {pending}; rejected frames so far {drops}")
