"""Livable alerts: grouping, rate limits that fold instead of dropping, quiet hours, reports."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from alertd.delivery.notify import build_notifiers
from alertd.delivery.outbox import Outbox
from alertd.delivery.ratelimit import parse_rate, plan
from alertd.delivery.worker import DeliveryWorker
from alertd.domain.alerts import Alert
from alertd.domain.quiet import Quiet, parse_quiet
from alertd.rules.load import load_rules
from alertd.runtime.agent import targets
from alertd.runtime.pipeline import Pipeline
from alertd.shaping.reports import parse_every
from alertd.sim.frames import dd_balance, dd_order, sx, sx_order, sx_trade
from alertd.storage.store import Store
from tests.conftest import API_KEY, MAIN, SPOT, Clock, agent_config, write
from tests.conftest import DD_KEY as DD
from tests.sinks import HttpSink, wait_for


def pipeline(state, tmp_path: Path, rules: str, clock: Clock) -> Pipeline:
    write(tmp_path / "rules" / "r.yaml", rules)
    store = Store(state, clock=clock)
    return Pipeline(load_rules(tmp_path / "rules", ["t"]), store, clock=clock)


def sent(p: Pipeline) -> list[tuple[str, str]]:
    return [tuple(r) for r in p.store.db.execute("SELECT title, body FROM outbox ORDER BY id")]


FILLS = """
rules:
  - name: fills
    on: fill
    notify: [t]
    title: "{side} {symbol}: {qty} @ {price}"
    message: "fee {fee} {fee_asset}; filled {filled_qty}/{order_qty}; complete: {complete}"
  - name: low
    on: balance
    when: {free: {lt: 500}}
    notify: [t]
    title: "low {asset}"
    message: "free {free}"
"""


def trade(n: int, qty: str, price: str, fee: str, *, at: float) -> dict:
    return {**sx_trade(n, qty, at=at), "p": price, "f": fee}


def test_forty_fills_of_one_order_are_one_message_with_exact_totals(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, FILLS, clock)
    p.raw(SPOT, sx("accountOrderUpdate", sx_order("NEW", "0", at=clock.now)))
    for i in range(40):
        price = Decimal(60000) + Decimal(i) / 2
        fill = trade(100 + i, "0.01", str(price), f"0.00{i % 10}", at=clock.now)
        p.raw(SPOT, sx("accountTrade", fill))
        clock.now += 0.01
    p.flush()
    assert sent(p) == []  # the window (2 s from the first fill) is still open
    clock.now += 2
    p.flush()
    value = sum(Decimal("0.01") * (Decimal(60000) + Decimal(i) / 2) for i in range(40))
    assert value / Decimal("0.40") == Decimal("60009.75")
    fees = sum(Decimal(f"0.00{i % 10}") for i in range(40))
    assert sent(p) == [("buy vBTC_vUSDC: 0.40 @ 60009.75 (40 fills)",
                        f"fee {fees} -; filled 0.40/0.5; complete: no")]
    assert p.groups.count() == 0 and p.messages == 1 and p.alerts == 40


def test_the_fill_that_completes_an_order_releases_its_group_at_once(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, FILLS, clock)
    p.raw(SPOT, sx("accountOrderUpdate", sx_order("NEW", "0", at=clock.now)))
    p.raw(SPOT, sx("accountTrade", trade(1, "0.2", "60000", "0.5", at=clock.now)))
    p.raw(SPOT, sx("accountTrade", trade(2, "0.3", "60010", "0.25", at=clock.now)))
    p.flush()
    assert sent(p) == [("buy vBTC_vUSDC: 0.5 @ 60006 (2 fills)",
                        "fee 0.75 -; filled 0.5/0.5; complete: yes")]


def test_other_kinds_group_by_rule_into_one_listed_message(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, FILLS, clock)
    p.raw(MAIN, dd_balance("100", usdm="20"))
    clock.now += 2
    p.flush()
    [(title, body)] = sent(p)
    assert title in ("low usdm (+1 more)", "low ada (+1 more)")
    assert sorted(body.splitlines()) == ["• low ada: free 100", "• low usdm: free 20"]


def test_group_wait_0_sends_each_alert_alone_at_once(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path,
                 FILLS.replace("notify: [t]\n", "notify: [t]\n    group_wait: 0\n"),
                 clock)
    p.raw(MAIN, dd_balance("100", usdm="20"))
    p.flush()
    assert sorted(t for t, _ in sent(p)) == ["low ada", "low usdm"]


def test_kill_9_inside_a_group_window_loses_nothing_and_repeats_nothing(tmp_path, sim, spawn):
    rules = tmp_path / "rules"
    write(rules / "r.yaml", "rules:\n  - name: fill\n    on: fill\n    notify: [hook]\n"
          "    group_wait: 3s\n    title: 'fill {trade_id} x{fills}'\n")
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url})
        first = spawn(cfg, rules)
        assert sim.wait_ready(DD, timeout=20)
        sim.push_deltadefi(API_KEY, dd_order("o1", "partially_filled", [("r1", "5")], "5"))
        sim.push_deltadefi(API_KEY, dd_order("o1", "partially_filled",
                                             [("r1", "5"), ("r2", "5")], "10"))

        def grouped() -> int:
            db = sqlite3.connect(tmp_path / "state.db")
            try:
                return db.execute("SELECT COUNT(*) FROM groups").fetchone()[0]
            finally:
                db.close()

        assert wait_for(lambda: grouped() == 2, 10)
        first.proc.kill()
        first.wait()
        assert sink.posts == []
        second = spawn(cfg, rules)
        assert wait_for(lambda: sink.posts, 20)
        wait_for(lambda: False, 1.5)
        second.kill()
    assert sink.titles() == ["fill r1, r2 x2"]


def covered(posts: list[dict]) -> list[str]:
    """Every alert title the posts carry: alone, or as a line of a digest."""
    out = []
    for post in posts:
        if " alerts (" in post["title"]:
            out += [line.split(":")[0].removeprefix("• ") for line in post["message"].splitlines()]
        else:
            out.append(post["title"])
    return out


def queue(store: Store, outbox: Outbox, n: int, severity: str = "info",
          quiet: Quiet | None = None, prefix: str = "a") -> None:
    with store.transaction():
        for i in range(n):
            outbox.add(Alert(rule="r", kind="fill", account="main", severity=severity,
                             title=f"{prefix}{i}", body="b", notify=("hook",)), quiet)


def test_a_hundred_alerts_past_a_rate_limit_fold_into_digests_and_none_is_lost(state, tmp_path):
    clock = Clock()
    with HttpSink() as sink:
        notifiers = build_notifiers({"hook": (sink.url,)}, "test")
        store = Store(state, clock=clock)
        outbox = Outbox(store)
        outbox.targets = targets(notifiers)
        queue(store, outbox, 100)
        [target] = notifiers["hook"].targets
        worker = DeliveryWorker(notifiers["hook"], Outbox(store, own=True), clock=clock,
                                rates={target: parse_rate("10/3s")})
        worker.start()
        try:
            # the window's 10 slots: 9 alerts alone, and the tenth carries 50 as a digest
            assert wait_for(lambda: len(sink.posts) == 10, 20)
            assert wait_for(lambda: outbox.counts()["hook"]["pending"] == 41, 10)  # marked
            clock.now += 3  # the window frees (all its slots at once, on this clock)
            worker.wake()
            assert wait_for(lambda: outbox.counts()["hook"]["pending"] == 0, 20)
        finally:
            worker.stop(5)
    assert sorted(covered(sink.posts)) == sorted(f"a{i}" for i in range(100))
    digests = [p["title"] for p in sink.posts if " alerts (" in p["title"]]
    assert len(sink.posts) == 20 and digests == ["50 alerts (over the rate limit of 10/3s)",
                                                 "32 alerts (over the rate limit of 10/3s)"]
    assert outbox.counts()["hook"] == {"pending": 0, "delivered": 20, "folded": 80, "dead": 0}
    assert worker.folded == 82


def test_quiet_hours_hold_alerts_below_failure_and_release_them_as_one_digest(state, tmp_path):
    berlin = ZoneInfo("Europe/Berlin")
    clock = Clock()
    clock.now = dt.datetime(2026, 11, 23, 2, 30, tzinfo=berlin).timestamp()
    quiet = parse_quiet({"from": "23:00", "to": "07:00", "tz": "Europe/Berlin"})
    with HttpSink() as sink:
        notifiers = build_notifiers({"hook": (sink.url,)}, "test")
        store = Store(state, clock=clock)
        outbox = Outbox(store)
        queue(store, outbox, 5, quiet=quiet)
        queue(store, outbox, 1, severity="failure", quiet=quiet, prefix="down")
        worker = DeliveryWorker(notifiers["hook"], Outbox(store, own=True), clock=clock)
        worker.start()
        try:
            assert wait_for(lambda: sink.posts, 10)
            assert not wait_for(lambda: len(sink.posts) > 1, 1)
            assert sink.titles() == ["down0"]  # a failure goes through quiet hours
            clock.now = dt.datetime(2026, 11, 23, 7, 0, 1, tzinfo=berlin).timestamp()
            worker.wake()
            assert wait_for(lambda: len(sink.posts) == 2, 10)
        finally:
            worker.stop(5)
    assert sink.posts[1]["title"] == "5 alerts (held in quiet hours)"
    assert covered(sink.posts[1:]) == [f"a{i}" for i in range(5)]


def test_quiet_hours_over_midnight_follow_the_zone_and_its_clock_changes():
    quiet = parse_quiet({"from": "23:00", "to": "07:00", "tz": "Europe/Berlin"})
    berlin = ZoneInfo("Europe/Berlin")

    def at(*args: int) -> float:
        return dt.datetime(*args, tzinfo=berlin).timestamp()

    assert quiet.until(at(2026, 11, 23, 22, 59)) is None
    assert quiet.until(at(2026, 11, 23, 23, 0)) == at(2026, 11, 24, 7, 0)
    assert quiet.until(at(2026, 11, 24, 6, 59)) == at(2026, 11, 24, 7, 0)
    assert quiet.until(at(2026, 11, 24, 7, 0)) is None
    # the night summer time ends is an hour longer, and still ends at 07:00 local
    assert quiet.until(at(2026, 10, 24, 23, 30)) == at(2026, 10, 25, 7, 0)
    assert at(2026, 10, 25, 7, 0) - at(2026, 10, 24, 23, 30) == 8.5 * 3600
    day = parse_quiet({"from": "12:00", "to": "13:30"})  # UTC by default
    assert day.until(dt.datetime(2026, 1, 1, 13, 0, tzinfo=dt.UTC).timestamp()) == \
        dt.datetime(2026, 1, 1, 13, 30, tzinfo=dt.UTC).timestamp()


def test_plan_sends_what_fits_and_folds_the_rest_into_the_last_free_slot():
    assert plan([1, 2, 3], 5) == [[1], [2], [3]]
    assert plan([1, 2, 3, 4], 3) == [[1], [2], [3, 4]]
    assert plan([1, 2, 3], 1) == [[1, 2, 3]]
    assert plan([1, 2], 0) == []
    assert plan([1, 2, 3], 2, [True, False, True]) == [[1, 3], [2]]
    assert len(plan(list(range(200)), 1)[0]) == 50  # a digest stays readable; the rest waits


WORKER = """
import sys, time
from alertd.runtime.agent import targets
from alertd.delivery.notify import build_notifiers
from alertd.delivery.outbox import Outbox
from alertd.delivery.ratelimit import parse_rate
from alertd.delivery.worker import DeliveryWorker
from alertd.storage.store import Store
notifiers = build_notifiers({"hook": (sys.argv[2],)}, "test")
[target] = notifiers["hook"].targets
worker = DeliveryWorker(notifiers["hook"], Outbox(Store(sys.argv[1]), own=True),
                        rates={target: parse_rate("5/3s")})
worker.start()
time.sleep(60)
"""


def test_kill_9_inside_a_rate_window_loses_nothing_repeats_nothing_and_keeps_the_rate(
        tmp_path):
    with HttpSink() as sink:
        store = Store(tmp_path / "s.db")
        outbox = Outbox(store)
        outbox.targets = targets(build_notifiers({"hook": (sink.url,)}, "test"))
        queue(store, outbox, 300)
        store.close()
        run = [sys.executable, "-c", WORKER, str(tmp_path / "s.db"), sink.url]
        first = subprocess.Popen(run)
        try:
            assert wait_for(lambda: len(sink.posts) == 5, 20)
            assert not wait_for(lambda: len(sink.posts) > 5, 0.5)  # waiting for the window
        finally:
            first.kill()
            first.wait(10)
        second = subprocess.Popen(run)
        try:
            assert wait_for(lambda: len(covered(sink.posts)) >= 300, 30)
            wait_for(lambda: False, 1)
        finally:
            second.kill()
            second.wait(10)
    assert sorted(covered(sink.posts)) == sorted(f"a{i}" for i in range(300))
    # never more than 5 messages in 3 s, across the restart too (the window is in the file)
    times = sink.times
    assert all(times[i + 5] - times[i] >= 2.9 for i in range(len(times) - 5))


REPORTS = FILLS + """
reports:
  - name: daily
    every: day at "08:00"
    tz: Europe/Berlin
    notify: [t]
"""


def reports_sent(p: Pipeline) -> list[tuple[str, str]]:
    return [(t, b) for t, b in sent(p) if t.startswith("Report ")]


@pytest.mark.parametrize("day", [dt.date(2026, 11, 23), dt.date(2027, 3, 28),
                                 dt.date(2027, 10, 31), dt.date(2028, 2, 29)])
def test_a_daily_report_at_08_00_has_the_period_s_fills_and_is_sent_once(state, tmp_path, day,
                                                                          local_zone):
    berlin = ZoneInfo("Europe/Berlin")
    clock = Clock()

    def at(hour: int, minute: int = 0, days: int = 0) -> float:
        return dt.datetime.combine(day + dt.timedelta(days=days), dt.time(hour, minute),
                                   tzinfo=berlin).timestamp()

    clock.now = at(7, 0)
    p = pipeline(state, tmp_path, REPORTS, clock)
    assert p.reports() == []  # first sight: only the schedule is recorded
    p.raw(SPOT, sx("accountOrderUpdate", sx_order("NEW", "0", at=clock.now)))
    p.raw(SPOT, sx("accountTrade", trade(1, "0.2", "60000", "0.5", at=clock.now)))
    p.raw(SPOT, sx("accountTrade", trade(2, "0.1", "60010", "0.25", at=clock.now)))
    p.raw(MAIN, dd_balance("1383.52", usdm="20"))
    clock.now = at(7, 59)
    assert p.reports() == []
    clock.now = at(8, 0, days=0) + 20
    [report] = p.reports()
    assert report.title == (f"Report daily: {day - dt.timedelta(days=1)} 08:00 to {day} 08:00 "
                            "Europe/Berlin")
    assert "Fills: 2\n  desk vBTC_vUSDC buy: 2 fills, volume 0.3 (18001.0 quote), fees 0.75" \
        in report.body
    assert "main/spot ADA: free 1383.52, total 1383.52" in report.body
    assert "Health: streams" in report.body
    assert p.reports() == []
    again = Pipeline(p.rules, Store(state, clock=clock), clock=clock)
    assert again.reports() == []  # a restart does not send it twice
    clock.now = at(11, 0, days=2)  # alertd was down over the next 08:00s
    [late] = again.reports()
    assert late.title == f"Report daily: {day} 08:00 to {day + dt.timedelta(days=2)} 08:00 " \
        "Europe/Berlin (late)"
    assert "Fills: 0" in late.body
    assert len(reports_sent(again)) == 2


def test_report_schedules_in_their_zone():
    berlin = ZoneInfo("Europe/Berlin")

    def at(*args: int) -> float:
        return dt.datetime(*args, tzinfo=berlin).timestamp()

    daily = parse_every('day at "08:00"')
    assert daily.last(at(2026, 11, 23, 7, 59), berlin) == at(2026, 11, 22, 8, 0)
    assert daily.last(at(2026, 11, 23, 8, 0), berlin) == at(2026, 11, 23, 8, 0)
    weekly = parse_every('monday at "09:30"')  # 2026-11-23 is a Monday
    assert weekly.last(at(2026, 11, 23, 9, 0), berlin) == at(2026, 11, 16, 9, 30)
    assert weekly.last(at(2026, 11, 29, 9, 0), berlin) == at(2026, 11, 23, 9, 30)
    assert parse_every('hour at ":15"').last(at(2026, 11, 23, 9, 10), berlin) == \
        at(2026, 11, 23, 8, 15)
    assert parse_every("6 hours").last(at(2026, 11, 23, 13, 5), berlin) == at(2026, 11, 23, 12)


def test_quiet_hours_on_a_rule_hold_its_alerts_but_never_a_failure(state, tmp_path):
    berlin = ZoneInfo("Europe/Berlin")
    clock = Clock()
    clock.now = dt.datetime(2026, 11, 23, 1, 0, tzinfo=berlin).timestamp()
    p = pipeline(state, tmp_path, """
rules:
  - name: low
    on: balance
    when: {free: {lt: 500}}
    notify: [t]
    group_wait: 0
    quiet: {from: "23:00", to: "07:00", tz: Europe/Berlin}
    title: "low {asset}"
  - name: very-low
    on: balance
    when: {free: {lt: 50}}
    notify: [t]
    group_wait: 0
    severity: failure
    quiet: {from: "23:00", to: "07:00", tz: Europe/Berlin}
    title: "very low {asset}"
""", clock)
    p.raw(MAIN, dd_balance("20"))
    p.flush()
    rows = p.store.db.execute("SELECT title, held, next_at FROM outbox ORDER BY id").fetchall()
    seven = dt.datetime(2026, 11, 23, 7, 0, tzinfo=berlin).timestamp()
    assert sorted(rows) == [("low ada", 1, seven), ("very low ada", 0, clock.now)]
