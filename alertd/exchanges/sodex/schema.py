"""The SoDEX pushes alertd reads, as JSON Schemas keyed by channel (account pushes by
channel/market, since spot and perps differ)."""

from __future__ import annotations

from typing import Any

from alertd.exchanges.shapes import DEC, ID, MS, OPT_DEC, OPT_STR, STR, obj


def _one_or_many(item: dict[str, Any]) -> dict[str, Any]:
    return {"anyOf": [item, {"type": "array", "items": item}]}


def _push(data: dict[str, Any]) -> dict[str, Any]:
    """A push; without `type` it is an update, and a `null` data holds nothing (as the SDKs
    read them)."""
    return obj({"channel": STR}, {"type": {"enum": ["snapshot", "update"]},
                                   "data": {"anyOf": [data, {"type": "null"}]}})


_SX_ORDER = obj({"i": ID, "s": STR, "S": STR, "X": STR},
                 {"E": MS, "c": OPT_STR, "o": STR, "p": OPT_DEC, "q": OPT_DEC, "z": OPT_DEC})
_SX_TRADE = obj({"t": ID, "s": STR, "i": ID, "S": STR, "p": DEC, "q": DEC},
                 {"E": MS, "f": OPT_DEC, "m": {"type": ["boolean", "null"]}})
_SX_POSITION = obj({"s": STR, "sz": DEC},
                    {"ep": OPT_DEC, "iw": OPT_DEC, "ps": OPT_STR, "i": ID})

SX_SPOT_ACCOUNT = obj({}, {"B": {"type": ["array", "null"], "items": obj(
    {"a": STR, "t": DEC, "l": DEC})}, "E": MS, "h": {"type": "integer"}})
SX_PERPS_ACCOUNT = obj({}, {
    "E": MS,
    "B": {"type": ["array", "null"], "items": obj({"a": STR, "wb": DEC}, {"co": OPT_DEC})},
    "P": {"type": ["array", "null"], "items": _SX_POSITION}})

SCHEMAS: dict[str, dict[str, Any]] = {
    "accountUpdate/spot": _push(SX_SPOT_ACCOUNT),
    "accountUpdate/perps": _push(SX_PERPS_ACCOUNT),
    "accountState/spot": _push(SX_SPOT_ACCOUNT),
    "accountState/perps": _push(SX_PERPS_ACCOUNT),
    "accountOrderUpdate": _push(_one_or_many(_SX_ORDER)),
    "accountTrade": _push(_one_or_many(_SX_TRADE)),
    "accountEvent": _push(obj({"type": STR}, {"E": MS, "P": {
        "type": ["array", "null"], "items": _SX_POSITION}})),
}
