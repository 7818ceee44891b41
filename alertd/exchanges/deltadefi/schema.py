"""The DeltaDeFi frames alertd reads, as JSON Schemas keyed by sub_type."""

from __future__ import annotations

from typing import Any

from alertd.exchanges.shapes import DEC, ID, OPT_DEC, OPT_STR, STR, obj

_DD_RECORD = obj(
    {"id": ID, "filled_base_qty": DEC},
    {"order_id": ID, "execution_price": DEC, "filled_quote_qty": DEC, "commission": OPT_DEC,
     "commission_unit": OPT_STR, "role": OPT_STR, "created_at": OPT_STR},
)

_DD_ORDER = {**obj(
    {"status": STR, "symbol": STR, "side": STR},
    {"id": ID, "order_id": ID, "base_qty": DEC, "quote_qty": DEC, "price": OPT_DEC,
     "type": STR, "executed_base_qty": DEC, "executed_quote_qty": DEC,
     "executed_price": OPT_DEC, "commission": OPT_DEC, "commission_unit": OPT_STR,
     "updated_at": OPT_STR,
     "order_execution_records": {"type": ["array", "null"], "items": _DD_RECORD}}),
    "anyOf": [{"required": ["id"]}, {"required": ["order_id"]}]}
"""The order shape of order_info and of REST; the older shape names its id `order_id`."""

_DD_LEGACY_ITEMS = {"type": ["array", "object", "null"], "items": {"anyOf": [
    _DD_ORDER, {**_DD_RECORD, "required": ["id", "filled_base_qty", "order_id"]}]}}
DD_BALANCES = {"type": ["array", "null"], "items": obj({"asset": STR, "free": DEC, "locked": DEC},
                                                        {"asset_unit": OPT_STR})}

SCHEMAS: dict[str, dict[str, Any]] = {
    "order_info": obj({"type": STR, "sub_type": STR, "order": _DD_ORDER}),
    "balance": obj({"type": STR, "sub_type": STR}, {"balance": DD_BALANCES}),
    "dlta_points": obj({"type": STR, "sub_type": STR, "dlta_points": obj(
        {"new_total": DEC, "league": STR},
        {"delta": DEC, "season_points": OPT_DEC, "source_type": OPT_STR, "source_ref": OPT_STR})}),
}
for _legacy in ("open_orders", "orders_history", "trading_history"):
    SCHEMAS[_legacy] = obj({"type": STR, "sub_type": STR}, {
        _legacy: _DD_LEGACY_ITEMS, "data": _DD_LEGACY_ITEMS, "orders": _DD_LEGACY_ITEMS})
