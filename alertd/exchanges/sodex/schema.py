"""The SoDEX pushes alertd reads, as JSON Schemas keyed by channel (account pushes by
channel/market, since spot and perps differ).

They require only what normalising reads; the exchange's full shapes, as its SDKs type them,
are in `contracts/sodex/` (the simulator is held to those). Amounts may be numbers or
numerals, ids numbers or text, and what the SDKs read as optional may be null."""

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


def _list(item: dict[str, Any]) -> dict[str, Any]:
    return {"type": ["array", "null"], "items": item}


MODE = {"type": ["string", "integer", "null"]}
"""A margin mode: its name (ISOLATED/CROSS, sodex-ts-sdk `common/enums.ts`) or its code
(1/2, the python SDK's own test fixture)."""

_SX_ORDER = obj({"i": ID, "s": STR, "S": STR, "X": STR},
                 {"E": MS, "T": MS, "c": OPT_STR, "o": STR, "p": OPT_DEC, "q": OPT_DEC,
                  "z": OPT_DEC, "r": OPT_STR, "x": OPT_STR})
_SX_TRADE = obj({"t": ID, "s": STR, "i": ID, "S": STR, "p": DEC, "q": DEC},
                 {"E": MS, "T": MS, "f": OPT_DEC, "m": {"type": ["boolean", "null"]}})
_SX_POSITION = obj({"s": STR, "sz": DEC},
                    {"ep": OPT_DEC, "iw": OPT_DEC, "ps": OPT_STR, "i": ID, "m": MODE,
                     "lp": OPT_DEC, "ur": OPT_DEC, "l": OPT_DEC})

SX_SPOT_ACCOUNT = obj({}, {"B": _list(obj({"a": STR, "t": DEC, "l": DEC})), "E": MS,
                           "h": {"type": "integer"}})
SX_PERPS_ACCOUNT = obj({}, {
    "E": MS,
    "B": _list(obj({"a": STR, "wb": DEC}, {"co": OPT_DEC})),
    "P": _list(_SX_POSITION),
    "S": _list(obj({"s": STR}, {"m": MODE})),
    **{k: OPT_DEC for k in ("av", "am", "cm", "ocm", "im", "oim", "ami", "amw")}})

_SX_LIQUIDATION = obj({"type": STR}, {
    "E": MS, "lid": ID, "av": OPT_DEC, "mm": MODE,
    "P": _list(obj({"s": STR, "sz": DEC}, {"ps": OPT_STR, "mp": OPT_DEC, "lp": OPT_DEC}))})
_SX_EVENT = {**obj({"type": STR}, {"E": MS}),
             "if": {"properties": {"type": {"const": "liquidation"}}},
             "then": _SX_LIQUIDATION}
"""An account event: any type passes (only a liquidation is read), a liquidation whole."""

SCHEMAS: dict[str, dict[str, Any]] = {
    "accountUpdate/spot": _push(SX_SPOT_ACCOUNT),
    "accountUpdate/perps": _push(SX_PERPS_ACCOUNT),
    "accountState/spot": _push(SX_SPOT_ACCOUNT),
    "accountState/perps": _push(SX_PERPS_ACCOUNT),
    "accountOrderUpdate": _push(_one_or_many(_SX_ORDER)),
    "accountTrade": _push(_one_or_many(_SX_TRADE)),
    "accountEvent": _push(_one_or_many(_SX_EVENT)),
}
