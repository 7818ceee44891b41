"""Numbers from the wire are bounded where they enter: a hostile amount costs one counted drop,
never a gigabyte; backoff exponents stop growing, so a long outage never overflows a float."""

from __future__ import annotations

import json
import time
import tracemalloc
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from alertd.delivery.worker import RETRY_MAX, retry_delay
from alertd.domain.observations import (
    AmountError,
    Drop,
    Source,
    bounded,
    dec,
    nonzero,
    parse_amount,
    parse_whole,
)
from alertd.ingest.decode import decode
from alertd.rules.load import load_rules
from alertd.runtime.pipeline import Pipeline
from alertd.sim.frames import dd_balance, dd_order, sx, sx_order, sx_trade
from alertd.storage.store import Store
from tests.conftest import write

MAIN = Source("main", "deltadefi", "spot")
SPOT = Source("desk", "sodex", "spot")
NOW = 1_795_000_000.0
RULES = """
rules:
  - name: fills
    on: fill
    notify: [t]
    group_wait: 0
    title: "{side} {symbol}: {qty} @ {price:.2f}"
    message: "quote {quote_qty:f}"
  - name: low
    on: balance
    when: {free: {lt: 500}}
    notify: [t]
    group_wait: 0
    title: "low {asset}"
    message: "free {free:f}"
"""
HUGE = "1e999999999"


@pytest.fixture
def pipe(tmp_path) -> Pipeline:
    write(tmp_path / "rules" / "r.yaml", RULES)
    store = Store(tmp_path / "s.db", clock=lambda: NOW)
    return Pipeline(load_rules(tmp_path / "rules", ["t"]), store, clock=lambda: NOW)


def sent(p: Pipeline) -> list[tuple[str, str]]:
    return [tuple(r) for r in p.store.db.execute("SELECT title, body FROM outbox ORDER BY id")]


def dd_fill(price: str) -> str:
    frame = dd_order("o1", "partially_filled", [("r1", "5")], "5", at=NOW)
    frame["order"]["order_execution_records"][0]["execution_price"] = price
    return json.dumps(frame)


def hostile() -> list[tuple[Source, str]]:
    trade = {**sx_trade(1, "0.2", at=NOW), "p": 0}
    return [
        (MAIN, dd_fill(HUGE)),  # a string amount, read by the normaliser
        (MAIN, dd_fill("-" + HUGE)),
        (MAIN, dd_balance(HUGE)),  # a JSON number, read by the decoder
        (SPOT, sx("accountTrade", trade).replace('"p": 0', f'"p": {HUGE}')),
        (MAIN, dd_balance("1" * 5000)),
        (MAIN, dd_balance("NaN")),
        (MAIN, dd_fill("0." + "0" * 40 + "1")),
    ]


def test_a_hostile_amount_drops_its_frame_counted_fast_and_small(pipe):
    pipe.raw(SPOT, sx("accountOrderUpdate", sx_order("NEW", "0", at=NOW)))
    frames = hostile()
    tracemalloc.start()
    began = time.perf_counter()
    try:
        for src, raw in frames:
            assert pipe.raw(src, raw) == []
        took = time.perf_counter() - began
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert took < 2 and peak < 4_000_000, (took, peak)
    assert sent(pipe) == [] and pipe.groups.count() == 0
    counts = {key: n for key, n in pipe.drops.counts.items() if n}
    assert counts == {("main/spot", "amount_out_of_range"): 6,
                      ("desk/spot", "amount_out_of_range"): 1}
    example = pipe.drops.examples[("main/spot", "amount_out_of_range")]
    assert len(example) < 200 and "is not an amount" in example


def test_real_amounts_with_18_decimals_and_big_supplies_still_pass(pipe):
    pipe.raw(MAIN, dd_balance("0.000000000000000001", usdm="999999999999999.123456789012345678"))
    assert sent(pipe) == [("low ada", "free 0.000000000000000001")]
    pipe.raw(MAIN, dd_fill("0.000000000000000001"))
    assert sent(pipe)[-1] == ("buy ADAUSDM: 5 @ 0.00", "quote 4.65")
    assert pipe.drops.counts == {}


@pytest.mark.parametrize("text", ["0.000000000000000001", "123456789012345.123456789012345678",
                                  "1e30", "-1e-30", "0", "0.00", "  7.5 ",
                                  "1" * 31, "0." + "0" * 29 + "1" * 40])
def test_in_bounds_amounts_are_exact(text):
    assert parse_amount(text) == Decimal(text) and dec(text) == Decimal(text)
    assert str(dec(Decimal(text))) == str(Decimal(text))


@pytest.mark.parametrize("text", [HUGE, "-" + HUGE, "1e31", "1e-31", "0e-50", "1" * 41,
                                  "0." + "0" * 30 + "1", "NaN", "Infinity", "-inf", "x",
                                  "9" * 10**6])
def test_out_of_bounds_amounts_raise_a_drop_with_a_short_reason(text):
    for parse in (parse_amount, dec, nonzero):
        with pytest.raises(AmountError) as caught:
            parse(text)
        assert isinstance(caught.value, Drop) and caught.value.reason == "amount_out_of_range"
        assert len(caught.value.detail) < 200
    if text.lstrip("-").isdigit() or "e" in text.lower():
        with pytest.raises(AmountError):
            dec(Decimal(text))


def test_json_integers_are_bounded_in_digits_only():
    assert parse_whole("1795000000000") == 1_795_000_000_000
    assert parse_whole("-" + "9" * 40) == -int("9" * 40)
    assert decode('{"E": 1795000000000, "h": 2211}') == {"E": 1795000000000, "h": 2211}
    for raw in ('{"E": ' + "9" * 41 + "}", '{"x": [Infinity]}', '{"p": 1e-999999999}'):
        with pytest.raises(Drop) as caught:
            decode(raw)
        assert caught.value.reason == "amount_out_of_range"


def test_retry_delay_after_two_thousand_attempts_is_the_cap_with_its_jitter():
    assert retry_delay(2000, rng=lambda: 0.5) == RETRY_MAX
    assert retry_delay(2000, rng=lambda: 0.0) == RETRY_MAX / 2
    assert retry_delay(2000, rng=lambda: 1.0) == RETRY_MAX * 1.5


_NUMERALS = st.from_regex(r"\A\s?-?[0-9]{0,45}(\.[0-9]{0,45})?([eE][-+]?[0-9]{1,3})?\s?\Z")


@settings(max_examples=400, deadline=None)
@given(st.one_of(_NUMERALS, st.sampled_from(["NaN", "sNaN", "-Infinity", "inf", "1_0", "."])))
def test_the_short_numeral_fast_path_bounds_exactly_as_the_full_check(text):
    """parse_amount skips `bounded` for short numerals without an exponent (issue 19); any
    text it accepts must be one the full check accepts, and the same value."""
    try:
        full = bounded(Decimal(text), text)
    except (ArithmeticError, AmountError):
        full = None
    try:
        fast = parse_amount(text)
    except AmountError:
        fast = None
    assert fast == full or (fast is None and full is None)
