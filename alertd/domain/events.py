"""Exchange-neutral events: the field names and types here are the contract rules are written in."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import Enum
from typing import Any


class FieldType(Enum):
    """How a field compares: numbers as exact decimals, strings case-insensitively."""

    NUMBER = "number"
    STRING = "string"
    BOOL = "bool"


N, S, B = FieldType.NUMBER, FieldType.STRING, FieldType.BOOL

COMMON_FIELDS: dict[str, FieldType] = {"account": S, "exchange": S, "market": S, "time": S}

KIND_FIELDS: dict[str, dict[str, FieldType]] = {
    "fill": {
        "order_id": S, "trade_id": S, "symbol": S, "side": S, "price": N, "qty": N,
        "quote_qty": N, "fee": N, "fee_asset": S, "role": S, "filled_qty": N, "order_qty": N,
        "complete": B, "caught_up": B, "fills": N,
    },
    "order": {
        "order_id": S, "symbol": S, "side": S, "type": S, "status": S, "previous_status": S,
        "price": N, "qty": N, "filled_qty": N, "reason": S, "exec_type": S,
    },
    "balance": {
        "asset": S, "free": N, "locked": N, "total": N, "previous_free": N, "previous_total": N,
    },
    "points": {
        "delta": N, "total": N, "season_points": N, "source_type": S, "source_ref": S, "league": S,
    },
    "league": {"league": S, "previous": S, "direction": S, "total": N, "season_points": N},
    "position": {
        "symbol": S, "size": N, "previous_size": N, "entry_price": N, "side": S, "margin_mode": S,
        "liquidation_price": N, "unrealized_pnl": N, "leverage": N, "caught_up": B,
    },
    "liquidation": {
        "symbol": S, "side": S, "size": N, "mark_price": N, "liquidation_price": N,
        "margin_mode": S, "account_value": N,
    },
    "margin": {
        "account_value": N, "available_margin": N, "used_margin": N, "margin_ratio": N,
        "previous_margin_ratio": N, "position_margin": N, "order_margin": N,
    },
    "stream": {"status": S, "reason": S},
}
EVENT_KINDS: tuple[str, ...] = tuple(KIND_FIELDS)

LEVEL_KINDS = frozenset({"balance", "position", "margin", "stream"})
"""Kinds that describe a state which persists: rules on them are edge-triggered per subject.
The other kinds are occurrences, each already unique, so a matching rule fires every time."""

DEFAULT_TEMPLATES: dict[str, tuple[str, str]] = {
    "fill": (
        "{side} {symbol} filled {filled_qty}/{order_qty}",
        "{qty} @ {price} ({quote_qty}) on {account}, {role}, fee {fee} {fee_asset}",
    ),
    "order": (
        "Order {symbol} {status}",
        "{side} {qty} @ {price} on {account}: {previous_status} -> {status}, filled {filled_qty}",
    ),
    "balance": (
        "{asset} balance on {account}",
        "free {free} (was {previous_free}), locked {locked}, total {total}",
    ),
    "points": (
        "{delta} points on {account}",
        "total {total}, season {season_points}, league {league} ({source_type})",
    ),
    "league": (
        "League {direction} on {account}: {previous} -> {league}",
        "total {total} points, season {season_points}",
    ),
    "position": (
        "{symbol} position {side} {size} on {account}",
        "was {previous_size}, entry {entry_price}, {margin_mode} margin",
    ),
    "liquidation": (
        "{symbol} {side} liquidated on {account}",
        "{size} at mark {mark_price} (liquidation price {liquidation_price}), {margin_mode} "
        "margin; account value {account_value}",
    ),
    "margin": (
        "Margin {margin_ratio:.1%} in use on {account}",
        "account value {account_value}, available {available_margin}, used {used_margin}",
    ),
    "stream": ("{exchange} stream {status} for {account}", "{reason}"),
}

RESOLVED_MESSAGES: dict[str, str] = {
    "balance": "now free {free} (was {previous_free}), total {total}",
    "position": "now {side} {size} (was {previous_size})",
    "margin": "now {margin_ratio} of the account value in use (value {account_value}, "
              "available {available_margin})",
    "stream": "now {status}: {reason}",
}
"""What a resolved notice says by default; its title is the rule's, after "Resolved: "."""

LEAGUES = ("bronze", "silver", "gold", "platinum", "diamond")


def fields_of(kind: str) -> dict[str, FieldType]:
    """All fields an event of `kind` carries, common ones included."""
    return {**COMMON_FIELDS, **KIND_FIELDS[kind]}


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened to an account.

    `subject` names what a level kind is about (account, market and asset or symbol), so that
    edge-triggering is tracked per subject; `changed` is False when a level was merely seen
    again (after a restart or reconnect), which rules without a condition ignore.
    """

    kind: str
    subject: str
    fields: dict[str, Any] = field(default_factory=dict)
    changed: bool = True

    @property
    def account(self) -> str:
        return self.fields["account"]


def plain_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    """An event's fields as JSON can hold them, numbers as their exact text."""
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in fields.items()}


def typed_fields(kind: str, stored: Mapping[str, Any] | None) -> dict[str, Any]:
    """Stored fields back in their types; a number that no longer reads as one stays text,
    so what holds it can still be shown."""
    types = fields_of(kind) if kind in EVENT_KINDS else {}
    fields = dict(stored or {})
    for k, v in fields.items():
        if types.get(k) is FieldType.NUMBER and v is not None:
            with contextlib.suppress(ArithmeticError, TypeError, ValueError):
                fields[k] = Decimal(v)
    return fields
