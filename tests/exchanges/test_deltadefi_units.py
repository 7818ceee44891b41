"""DeltaDeFi fees in units people read: `commission_unit` is an on-chain unit, the amount is
human-readable except in lovelace (see alertd/exchanges/deltadefi/assets.py for the sources)."""

from __future__ import annotations

from decimal import Decimal

from alertd.exchanges.deltadefi import assets
from alertd.exchanges.deltadefi.normalise import normalise
from alertd.sim.frames import dd_order
from tests.conftest import START

USDM = "c48cbb3d5e57ed56e276bc45f99ab39abe94e6cd7ac39fb402da47ad0014df105553444d"


def test_lovelace_is_ada_in_ada_and_a_policy_unit_is_its_symbol_with_or_without_the_dot():
    assert assets.fee(Decimal("800000"), "lovelace") == (Decimal("0.8"), "ADA")
    assert assets.fee(Decimal("0.093"), USDM) == (Decimal("0.093"), "USDM")
    dotted = USDM[:56] + "." + USDM[56:]
    assert assets.symbol(dotted) == "USDM"
    assert assets.fee(Decimal("1"), "USDX") == (Decimal("1"), "USDX")  # not a unit: as sent
    assert assets.fee(None, None) == (None, None)


def test_units_market_config_lists_are_learnt():
    unit = "ab" * 28 + "4941 47".replace(" ", "")
    assert assets.symbol(unit) == unit
    assets.learn({"assets": [{"symbol": "IAG", "unit": unit, "decimals": 6}],
                  "trading_pairs": [{"symbol": "IAGUSDM", "base_token": {"symbol": "IAG",
                                                                         "unit": unit}}]})
    assert assets.symbol(unit) == "IAG"
    assets.learn({"assets": [{"symbol": 7, "unit": "x"}, "junk"]})  # skipped, no error
    assert assets.symbol("x") == "x"


def test_an_order_info_frame_says_its_fees_in_the_asset_s_unit_and_symbol():
    frame = dd_order("o-1", "partially_filled", [("r1", "800"), ("r2", "100")], "900",
                     at=START)
    first, second = frame["order"]["order_execution_records"]
    first.update(commission="800000", commission_unit="lovelace")
    second.update(commission="0.093", commission_unit=USDM)
    frame["order"].update(commission="800000", commission_unit="lovelace")
    [order] = normalise("order_info", frame, START)
    assert (order.commission, order.commission_unit) == (Decimal("0.8"), "ADA")
    assert [(f.fee, f.fee_asset) for f in order.fills] == [(Decimal("0.8"), "ADA"),
                                                           (Decimal("0.093"), "USDM")]
