"""Exchange-neutral observations (what the account looks like now), and the helpers every
exchange's normaliser uses to make them (`alertd/exchanges/<name>/normalise.py`).

Observations are not yet events: whether something changed is decided by `detect`, which
knows the last state. Every exchange maps its statuses to the one vocabulary of TERMINAL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

TERMINAL = frozenset({"filled", "cancelled", "rejected", "expired", "failed",
                      "partially_cancelled", "replaced"})


@dataclass(frozen=True, slots=True)
class Source:
    """Which stream a frame came from: one account on one market."""

    account: str
    exchange: str
    market: str
    catching_up: bool = field(default=False, compare=False)
    """Set while REST catch-up replays what the stream missed: its fills say `caught_up`."""

    @property
    def key(self) -> str:
        return f"{self.account}/{self.market}"


@dataclass(slots=True)
class FillObs:
    trade_id: str
    order_id: str
    symbol: str
    side: str
    price: Decimal | None
    qty: Decimal
    quote_qty: Decimal | None
    fee: Decimal | None
    fee_asset: str | None
    role: str | None
    time: str
    ts: float | None = None
    """The exchange's time as epoch seconds, for ordering (ISO strings do not sort by time)."""


@dataclass(slots=True)
class OrderObs:
    """`fills` is the DeltaDeFi execution-record list (None on SoDEX, whose fills come apart)."""

    order_id: str
    symbol: str
    side: str
    type: str | None
    status: str
    price: Decimal | None
    qty: Decimal | None
    filled_qty: Decimal | None
    avg_price: Decimal | None
    fills: list[FillObs] | None
    time: str


@dataclass(slots=True)
class BalanceObs:
    asset: str
    free: Decimal
    locked: Decimal
    total: Decimal
    time: str


@dataclass(slots=True)
class PointsObs:
    delta: Decimal | None
    total: Decimal
    season_points: Decimal | None
    source_type: str | None
    source_ref: str | None
    league: str
    time: str


@dataclass(slots=True)
class PositionObs:
    symbol: str
    size: Decimal
    entry_price: Decimal | None
    side: str
    margin_mode: str
    time: str
    hedge: str = "both"
    """SoDEX `ps`: in hedge mode the long and the short leg of a symbol are two positions."""


@dataclass(slots=True)
class StreamObs:
    status: str
    reason: str
    time: str


Observation = FillObs | OrderObs | BalanceObs | PointsObs | PositionObs | StreamObs


def dec(value: Any) -> Decimal | None:
    """A wire amount as an exact Decimal (the decoder already turned JSON floats into Decimal)."""
    if value.__class__ is str:
        return Decimal(value)
    if value is None or isinstance(value, Decimal):
        return value
    if isinstance(value, str):
        return Decimal(value.strip())
    return Decimal(value)


def nonzero(value: Any) -> Decimal | None:
    """An order quantity, or None where the exchange sends 0 for "not by base quantity"
    (an order funded by quote amount), so no fill can look complete against 0."""
    amount = dec(value)
    return amount if amount else None


def epoch(value: Any) -> float | None:
    """Exchange time (ms since the epoch, or ISO 8601 text) as epoch seconds, or None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value / 1000
    if isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if parsed.tzinfo is None:
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.timestamp()
    return None


def iso(ms: int | None, now: float) -> str:
    seconds = ms / 1000 if isinstance(ms, int) else now
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def lower(value: Any) -> str | None:
    """Text lower-cased; anything else (a missing field) None."""
    return value.lower() if isinstance(value, str) else None
