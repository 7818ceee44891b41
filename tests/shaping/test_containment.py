"""A group, and a report's section, is the unit that fails alone: one that cannot be summed,
combined or read still goes out (or is logged and skipped) and never holds the others back."""

from __future__ import annotations

import datetime as dt
import json
import logging
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest

from alertd.domain.observations import Source
from alertd.shaping import group
from alertd.shaping.fill_log import log_fill
from alertd.shaping.group import total_fill
from alertd.sim.frames import dd_balance, dd_order, sx, sx_order, sx_trade
from tests.conftest import Clock
from tests.shaping.test_livable import pipeline, sent

MAIN = Source("main", "deltadefi", "spot")
SPOT = Source("desk", "sodex", "spot")
RULES = """
rules:
  - name: fills
    on: fill
    notify: [t]
    title: "{side} {symbol}: {qty} @ {price}"
    message: "quote {quote_qty}; filled {filled_qty}"
  - name: low
    on: balance
    when: {free: {lt: 500}}
    notify: [t]
    title: "low {asset}"
    message: "free {free}"
"""
LONG = "60000.123456789012345678901234"
"""A SoDEX price with more places than the default decimal context's 28 digits can average."""


def unpriced(at: float) -> str:
    """Order o1: a record without `execution_price`, one with, and 5 more executed than the
    records show, at `executed_price` "0": a derived fill without a price."""
    frame = dd_order("o1", "partially_filled", [("r1", "5"), ("r2", "5")], "15", at=at)
    del frame["order"]["order_execution_records"][0]["execution_price"]
    frame["order"]["executed_price"] = "0"
    return json.dumps(frame)


def groups_left(p) -> int:
    return p.store.db.execute("SELECT COUNT(*) FROM groups").fetchone()[0]


def test_fills_without_a_price_are_summed_without_one_and_block_no_other_group(tmp_path):
    clock = Clock()
    p = pipeline(tmp_path / "s.db", tmp_path, RULES, clock)
    p.raw(MAIN, unpriced(clock.now))
    p.raw(SPOT, sx("accountOrderUpdate", sx_order("NEW", "0", at=clock.now)))
    p.raw(SPOT, sx("accountTrade", {**sx_trade(1, "0.2", at=clock.now), "p": LONG}))
    p.raw(SPOT, sx("accountTrade", {**sx_trade(2, "0.3", at=clock.now), "p": LONG[:-1] + "6"}))
    p.raw(MAIN, dd_balance("100", usdm="20"))
    assert groups_left(p) == 7 and p.drops.counts == {}
    clock.now += 2
    p.flush()
    out = sent(p)
    assert ("buy ADAUSDM: 15 @ - (3 fills)", "quote -; filled 15") in out
    [long] = [b for t, b in out if t == "buy vBTC_vUSDC: 0.5 @ 60000.1234567890123456789012352 "
              "(2 fills)"]  # the exact average, past the default context's 28 digits
    assert long.endswith("; filled 0.5")
    [body] = [b for t, b in out if t.startswith("low ")]
    assert sorted(body.splitlines()) == ["• low ada: free 100", "• low usdm: free 20"]
    assert len(out) == 3 and groups_left(p) == 0
    again = pipeline(tmp_path / "s.db", tmp_path, RULES, clock)  # a restart: nothing stuck
    assert again.groups.count() == 0 and again.groups.due_in() is None


def test_a_group_that_cannot_be_combined_goes_out_listed_logged_once(tmp_path, monkeypatch,
                                                                     caplog):
    def broken(members):
        raise RuntimeError("cannot add these up")

    monkeypatch.setattr(group, "total_fill", broken)
    clock = Clock()
    p = pipeline(tmp_path / "s.db", tmp_path, RULES, clock)
    p.raw(MAIN, json.dumps(dd_order("o1", "partially_filled", [("r1", "5"), ("r2", "7")], "12",
                                    at=clock.now)))
    p.raw(MAIN, dd_balance("100", usdm="20"))
    clock.now += 2
    with caplog.at_level(logging.ERROR, logger="alertd"):
        p.flush()
    out = dict(sent(p))
    assert out["buy ADAUSDM: 5 @ 0.93 (+1 more)"] == (
        "• buy ADAUSDM: 5 @ 0.93: quote 4.65; filled 5\n"
        "• buy ADAUSDM: 7 @ 0.93: quote 6.51; filled 12")
    assert len(out) == 2 and groups_left(p) == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "rule fills" in errors[0] and "cannot add these up" in errors[0]


def test_a_stored_member_that_cannot_be_read_is_logged_and_the_rest_go_out(tmp_path, caplog):
    clock = Clock()
    p = pipeline(tmp_path / "s.db", tmp_path, RULES, clock)
    p.raw(MAIN, dd_balance("100", usdm="20"))
    with p.store.transaction():
        p.store.db.execute("INSERT INTO groups (rule, gkey, due, alert) VALUES (?, ?, ?, ?)",
                           ("fills", "[]", clock.now, "{not json"))
        p.store.db.execute("INSERT INTO groups (rule, gkey, due, alert) VALUES (?, ?, ?, ?)",
                           ("low", '["x"]', clock.now, json.dumps({
                               "kind": "balance", "account": "main", "severity": "info",
                               "title": "low x", "body": "free ?", "notify": ["t"],
                               "fields": {"free": "not a number", "asset": "x"}})))
    p.groups.reload()
    clock.now += 2
    with caplog.at_level(logging.ERROR, logger="alertd"):
        p.flush()
    titles = sorted(t for t, _ in sent(p))
    assert titles in (["low ada (+1 more)", "low x"], ["low usdm (+1 more)", "low x"])
    assert groups_left(p) == 0
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "rule fills" in errors[0] and "{not json" in errors[0]


def fill(qty: str | None, price: str | None, **more: object) -> dict[str, object]:
    return {"symbol": "S", "side": "buy", "account": "a", "order_id": "o", "trade_id": "t",
            "qty": None if qty is None else Decimal(qty),
            "price": None if price is None else Decimal(price),
            "quote_qty": None, "fee": None, "filled_qty": None, **more}


def test_total_fill_sums_what_it_has_and_never_raises():
    no_price = total_fill([fill("1", None), fill("2", "3")])
    assert no_price is not None and no_price["qty"] == 3 and no_price["price"] is None
    zero = total_fill([fill("1", "0"), fill("2", "3")])
    assert zero is not None and zero["qty"] == 3 and zero["price"] is None
    no_qty = total_fill([fill(None, "2"), fill("2", "3")])
    assert no_qty is not None and no_qty["qty"] is None and no_qty["price"] is None
    assert total_fill([fill("0", "2"), fill("0", "3")])["price"] == Decimal("3")
    big = "123456789012345.123456789012345678"  # beyond the default context's 28 digits
    exact = total_fill([fill(big, LONG), fill(big, LONG)])
    assert exact["qty"] == Decimal("246913578024690.246913578024691356")
    assert exact["price"] == Decimal(LONG)
    # rows stored before amounts were bounded: not summed (the group is listed instead)
    assert total_fill([fill("1e999999999", "1"), fill("1", "1")]) is None
    assert total_fill([fill("1", "1e-999999999"), fill("1", "1")]) is None
    assert total_fill([fill("1", "1", fee="0.1 ada"), fill("1", "1")]) is None


REPORTS = RULES + """
reports:
  - name: daily
    every: day at "08:00"
    tz: Europe/Berlin
    notify: [t]
"""


@pytest.mark.parametrize(("qtys", "error"), [(("9e999999", "9e999999"), "Overflow"),
                                             (("Infinity", "-Infinity"), "InvalidOperation")])
def test_a_report_section_that_cannot_be_summed_says_so_and_the_schedule_goes_on(
        tmp_path, caplog, qtys, error):
    berlin = ZoneInfo("Europe/Berlin")
    clock = Clock(dt.datetime(2026, 11, 23, 7, 0, tzinfo=berlin).timestamp())
    p = pipeline(tmp_path / "s.db", tmp_path, REPORTS, clock)
    assert p.reports() == []
    p.raw(MAIN, dd_balance("1383.52"))
    with p.store.transaction():
        for qty in qtys:
            log_fill(p.store, clock.now, {"account": "main", "symbol": "ADAUSDM", "side": "buy",
                                         "qty": qty, "quote_qty": "1", "fee": None})
    clock.now += 3600 + 20
    with caplog.at_level(logging.ERROR, logger="alertd"):
        [report] = p.reports()
    assert f"Fills: could not be rendered ({error})" in report.body
    assert "main/spot ADA: free 1383.52, total 1383.52" in report.body
    assert "Health: streams" in report.body
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "report daily" in errors[0] and "fills" in errors[0]
    clock.now += 86400
    [nextday] = p.reports()
    assert "Fills: 0" in nextday.body
    assert [t for t, _ in sent(p) if t.startswith("Report ")] == [report.title, nextday.title]
