"""A derived DeltaDeFi fill (`executed_base_qty` ahead of the records) is priced at the margin
of the order's executed quote, with the margin of its commission as fee; the record that
pays it off later corrects the fill log by what its own quote and fee differ, and is not
announced again (issue 16.11)."""

from __future__ import annotations

import json
from decimal import Decimal

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
    title: "{trade_id} {qty} @ {price}"
    message: "quote {quote_qty} fee {fee} {fee_asset}"
"""
Record = tuple[str, str, str, str]
"""(id, quantity, price, commission) of one execution record."""


def pipeline(state, tmp_path, clock: Clock) -> Pipeline:
    write(tmp_path / "rules" / "r.yaml", RULES)
    return Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(state, clock=clock),
                    clock=clock)


def order(records: list[Record], executed: str, quote: str | None, commission: str,
          clock: Clock, status: str = "partially_filled") -> str:
    """Order o1, a buy of 100 ADA, as DeltaDeFi states it: its records, what it executed
    (base, quote, commission so far) and the average price of that."""
    frame = dd_order("o1", status, [(rid, qty) for rid, qty, _, _ in records], executed,
                     qty="100", price="0.96", at=clock.now)
    o = frame["order"]
    for rec, (_, qty, price, fee) in zip(o["order_execution_records"], records, strict=True):
        rec.update(execution_price=price, filled_quote_qty=str(Decimal(qty) * Decimal(price)),
                   commission=fee)
    o["commission"] = commission
    o["executed_price"] = str(Decimal(quote) / Decimal(executed)) if quote else "0"
    if quote is None:
        del o["executed_quote_qty"]
        o["executed_price"] = "0.93"
    else:
        o["executed_quote_qty"] = quote
    return json.dumps(frame)


def said(p: Pipeline, frame: str) -> list[tuple[str, str]]:
    return [(a.title, a.body) for a in p.raw(MAIN, frame)]


def logged(p: Pipeline) -> list[tuple[str, str | None, str | None, str | None]]:
    """The fill log, as reports read it."""
    return p.store.db.execute("SELECT qty, quote, fee, fee_asset FROM fill_log "
                              "ORDER BY rowid").fetchall()


R1: Record = ("r1", "40", "0.90", "0.1")


def announced_ahead(p: Pipeline, clock: Clock, quote: str | None = "93.00") -> None:
    """r1 (40 at 0.90), then 60 more executed at 0.95 before their record came."""
    assert said(p, order([R1], "40", "36.00", "0.1", clock)) == [
        ("r1 40 @ 0.90", "quote 36.00 fee 0.1 ada")]
    assert said(p, order([R1], "100", quote, "0.4", clock)) == [
        ("o1@100 60 @ 0.95", "quote 57.00 fee 0.3 ada")]


def test_a_derived_fill_is_priced_at_the_margin_with_the_margin_of_the_commission(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    announced_ahead(p, clock)
    done = order([R1, ("r2", "60", "0.95", "0.3")], "100", "93.00", "0.4", clock, "closed")
    assert said(p, done) == []  # r2 pays the credit off, exactly as derived
    assert logged(p) == [("40", "36.00", "0.1", "ada"), ("60", "57.00", "0.3", "ada")]


def test_without_executed_quote_qty_the_average_price_gives_the_executed_quote(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    announced_ahead(p, clock, quote=None)  # executed_price 0.93 × 100 = 93.00


def test_the_record_that_pays_off_the_credit_corrects_the_log_and_is_not_said_again(
        state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    announced_ahead(p, clock)
    p.store.flush()
    again = pipeline(state, tmp_path, clock)  # what the credit cost is in the state file
    done = order([R1, ("r2", "60", "0.951", "0.35")], "100", "93.06", "0.45", clock, "closed")
    assert said(again, done) == []
    assert logged(again) == [("40", "36.00", "0.1", "ada"), ("60", "57.060", "0.35", "ada")]
    assert said(again, done) == [] and len(logged(again)) == 2
    assert again.store.db.execute("SELECT COUNT(*) FROM levels WHERE subject LIKE "
                                  "'%/credit/%'").fetchone() == (0,)  # paid off: forgotten


def test_two_records_pay_off_one_derived_fill_in_shares(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    announced_ahead(p, clock)
    half = order([R1, ("r2", "30", "0.95", "0.15")], "100", "93.00", "0.4", clock)
    assert said(p, half) == []  # its share of the derived fill, the same: nothing to correct
    assert logged(p)[1] == ("60", "57.00", "0.3", "ada")
    rest = order([R1, ("r2", "30", "0.95", "0.15"), ("r3", "30", "0.96", "0.15")], "100",
                 "93.30", "0.4", clock, "closed")
    assert said(p, rest) == []
    assert logged(p)[1] == ("60", "57.30", "0.3", "ada")  # 28.50 + 28.80


def test_more_executed_while_credit_is_owed_is_priced_past_what_is_owed(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    announced_ahead(p, clock)
    assert said(p, order([R1], "100", "93.00", "0.4", clock)) == []  # re-sent: nothing new
    frame = json.loads(order([R1], "100", "93.00", "0.4", clock))
    frame["order"].update(base_qty="150", executed_base_qty="120", executed_quote_qty="113.00",
                          commission="0.5")  # 20 more at 1.00 while r2's 60 is still owed
    assert said(p, json.dumps(frame)) == [("o1@120 20 @ 1.00", "quote 20.00 fee 0.1 ada")]
