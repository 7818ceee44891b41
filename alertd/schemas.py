"""JSON Schemas (Draft 2020-12) for every frame alertd acts on.

They require what normalisation reads and leave unknown extra fields alone, so an exchange
adding a field does not silence alerts, while a changed type or a missing field is caught.
"""

from __future__ import annotations

from typing import Any

DEC = {"anyOf": [{"type": "number"},
                 {"type": "string", "pattern": r"^\s*-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\s*$"}]}
OPT_DEC = {"anyOf": [DEC, {"type": "null"}]}
STR = {"type": "string"}
OPT_STR = {"type": ["string", "null"]}
ID = {"type": ["string", "integer"]}
MS = {"type": "integer", "minimum": 0}


def _obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": list(required),
            "properties": {**required, **(optional or {})}}


_DD_RECORD = _obj(
    {"id": ID, "filled_base_qty": DEC},
    {"order_id": ID, "execution_price": DEC, "filled_quote_qty": DEC, "commission": OPT_DEC,
     "commission_unit": OPT_STR, "role": OPT_STR, "created_at": OPT_STR},
)

_DD_ORDER = {**_obj(
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
DD_BALANCES = {"type": ["array", "null"], "items": _obj({"asset": STR, "free": DEC, "locked": DEC},
                                                        {"asset_unit": OPT_STR})}

DELTADEFI: dict[str, dict[str, Any]] = {
    "order_info": _obj({"type": STR, "sub_type": STR, "order": _DD_ORDER}),
    "balance": _obj({"type": STR, "sub_type": STR}, {"balance": DD_BALANCES}),
    "dlta_points": _obj({"type": STR, "sub_type": STR, "dlta_points": _obj(
        {"new_total": DEC, "league": STR},
        {"delta": DEC, "season_points": OPT_DEC, "source_type": OPT_STR, "source_ref": OPT_STR})}),
}
for _legacy in ("open_orders", "orders_history", "trading_history"):
    DELTADEFI[_legacy] = _obj({"type": STR, "sub_type": STR}, {
        _legacy: _DD_LEGACY_ITEMS, "data": _DD_LEGACY_ITEMS, "orders": _DD_LEGACY_ITEMS})


def _one_or_many(item: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [item, {"type": "array", "items": item}]}


def _push(data: dict[str, Any]) -> dict[str, Any]:
    """A push; without `type` it is an update, and a `null` data holds nothing (as the SDKs
    read them)."""
    return _obj({"channel": STR}, {"type": {"enum": ["snapshot", "update"]},
                                   "data": {"anyOf": [data, {"type": "null"}]}})


_SX_ORDER = _obj({"i": ID, "s": STR, "S": STR, "X": STR},
                 {"E": MS, "c": OPT_STR, "o": STR, "p": OPT_DEC, "q": OPT_DEC, "z": OPT_DEC})
_SX_TRADE = _obj({"t": ID, "s": STR, "i": ID, "S": STR, "p": DEC, "q": DEC},
                 {"E": MS, "f": OPT_DEC, "m": {"type": ["boolean", "null"]}})
_SX_POSITION = _obj({"s": STR, "sz": DEC},
                    {"ep": OPT_DEC, "iw": OPT_DEC, "ps": OPT_STR, "i": ID})

SX_SPOT_ACCOUNT = _obj({}, {"B": {"type": ["array", "null"], "items": _obj(
    {"a": STR, "t": DEC, "l": DEC})}, "E": MS, "h": {"type": "integer"}})
SX_PERPS_ACCOUNT = _obj({}, {
    "E": MS,
    "B": {"type": ["array", "null"], "items": _obj({"a": STR, "wb": DEC}, {"co": OPT_DEC})},
    "P": {"type": ["array", "null"], "items": _SX_POSITION}})

SODEX: dict[str, dict[str, Any]] = {
    "accountUpdate/spot": _push(SX_SPOT_ACCOUNT),
    "accountUpdate/perps": _push(SX_PERPS_ACCOUNT),
    "accountState/spot": _push(SX_SPOT_ACCOUNT),
    "accountState/perps": _push(SX_PERPS_ACCOUNT),
    "accountOrderUpdate": _push(_one_or_many(_SX_ORDER)),
    "accountTrade": _push(_one_or_many(_SX_TRADE)),
    "accountEvent": _push(_obj({"type": STR}, {"E": MS, "P": {
        "type": ["array", "null"], "items": _SX_POSITION}})),
}
