"""Exchange frames → exchange-neutral observations (what the account looks like now).

Observations are not yet events: whether something changed is decided by `detect`, which
knows the last state. Statuses are mapped to one lower-case vocabulary here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

DELTADEFI_STATUS = {
    "building": "pending", "processing": "pending", "open": "open", "closed": "filled",
    "failed": "failed", "cancelled": "cancelled", "partially_filled": "partially_filled",
    "fully_filled": "filled", "partially_cancelled": "partially_cancelled",
}
SODEX_STATUS = {
    "NEW": "open", "PARTIALLY_FILLED": "partially_filled", "FILLED": "filled",
    "CANCELED": "cancelled", "CANCELLED": "cancelled", "REJECTED": "rejected",
    "EXPIRED": "expired", "TRIGGERED": "triggered", "REPLACED": "replaced",
}
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


def _lower(value: Any) -> str | None:
    return value.lower() if isinstance(value, str) else None


def deltadefi(sub_type: str, frame: dict[str, Any], now: float) -> list[Observation]:
    """Observations in one validated DeltaDeFi frame."""
    if sub_type == "order_info":
        return [_dd_order(frame["order"], now)]
    if sub_type in DD_LEGACY:
        return _dd_legacy(frame, sub_type, now)
    if sub_type == "balance":
        out: list[Observation] = []
        for item in frame.get("balance") or ():
            free, locked = dec(item["free"]), dec(item["locked"])
            out.append(BalanceObs(item["asset"].lower(), free, locked, free + locked,
                                  iso(None, now)))
        return out
    p = frame["dlta_points"]
    return [PointsObs(dec(p.get("delta")), dec(p["new_total"]), dec(p.get("season_points")),
                      p.get("source_type"), p.get("source_ref"), p["league"].lower(),
                      iso(None, now))]


DD_LEGACY = ("open_orders", "orders_history", "trading_history")
"""Older DeltaDeFi sub_types: lists of orders (with their execution records) or of records."""


def dd_order_id(o: dict[str, Any]) -> str:
    """The order's id: `id` today, `order_id` in the older shape."""
    return str(o["id"] if o.get("id") is not None else o["order_id"])


def _dd_order(o: dict[str, Any], now: float) -> OrderObs:
    order_id, symbol, side = dd_order_id(o), o["symbol"], o["side"].lower()
    when = o.get("updated_at") or iso(None, now)
    fills = [_dd_record(r, order_id, symbol, side, when)
             for r in o.get("order_execution_records") or ()]
    status = o["status"].lower()
    return OrderObs(order_id=order_id, symbol=symbol, side=side, type=_lower(o.get("type")),
                    status=DELTADEFI_STATUS.get(status, status), price=dec(o.get("price")),
                    qty=nonzero(o.get("base_qty")), filled_qty=dec(o.get("executed_base_qty")),
                    avg_price=nonzero(o.get("executed_price")), fills=fills, time=when)


def _dd_record(r: dict[str, Any], order_id: str, symbol: str, side: str,
               when: str) -> FillObs:
    at = r.get("created_at") or when
    return FillObs(trade_id=str(r["id"]), order_id=order_id, symbol=symbol, side=side,
                   price=dec(r.get("execution_price")), qty=dec(r["filled_base_qty"]),
                   quote_qty=dec(r.get("filled_quote_qty")), fee=dec(r.get("commission")),
                   fee_asset=r.get("commission_unit"), role=_lower(r.get("role")), time=at,
                   ts=epoch(at))


def _dd_legacy(frame: dict[str, Any], sub_type: str, now: float) -> list[Observation]:
    """Orders are read as order_info; bare execution records as fills of their order."""
    items = frame.get(sub_type)
    if items is None:
        items = frame.get("data") or frame.get("orders") or ()
    out: list[Observation] = []
    for item in items if isinstance(items, list) else [items]:
        if "status" in item:
            out.append(_dd_order(item, now))
        elif "filled_base_qty" in item:
            out.append(_dd_record(item, str(item["order_id"]), item.get("symbol") or "-",
                                  (item.get("side") or "-").lower(), iso(None, now)))
    return out


def sodex(channel: str, frame: dict[str, Any], market: str, now: float) -> list[Observation]:
    """Observations in one validated SoDEX push."""
    data = frame.get("data")
    items = data if isinstance(data, list) else [] if data is None else [data]
    out: list[Observation] = []
    for d in items:
        when = iso(d.get("E"), now)
        if channel == "accountTrade":
            out.append(sx_fill(d, when))
        elif channel == "accountOrderUpdate":
            status = d["X"].upper()
            normal = "pending" if status.startswith("PENDING") else SODEX_STATUS.get(
                status, status.lower())
            out.append(OrderObs(
                order_id=str(d["i"]), symbol=d["s"], side=d["S"].lower(), type=_lower(d.get("o")),
                status=normal, price=dec(d.get("p")), qty=nonzero(d.get("q")),
                filled_qty=dec(d.get("z")), avg_price=None, fills=None, time=when))
        else:
            out.extend(_sx_account(d, market, when))
    return out


def sx_fill(d: dict[str, Any], when: str) -> FillObs:
    """One SoDEX trade (the accountTrade push or a REST trade row); its id is (symbol, t)."""
    price, qty = dec(d["p"]), dec(d["q"])
    return FillObs(
        trade_id=f"{d['s']}:{d['t']}", order_id=str(d["i"]), symbol=d["s"],
        side=d["S"].lower(), price=price, qty=qty, quote_qty=price * qty,
        fee=dec(d.get("f")), fee_asset=None,
        role=None if d.get("m") is None else ("maker" if d["m"] else "taker"), time=when,
        ts=epoch(d.get("T") or d.get("E")))


def _sx_account(d: dict[str, Any], market: str, when: str) -> list[Observation]:
    out: list[Observation] = []
    for b in d.get("B") or ():
        if market == "spot":
            total, locked = dec(b["t"]), dec(b["l"])
            out.append(BalanceObs(b["a"], total - locked, locked, total, when))
        elif "wb" in b:
            wallet = dec(b["wb"])
            out.append(BalanceObs(b["a"], wallet, Decimal(0), wallet, when))
    for p in d.get("P") or ():
        size = dec(p["sz"])
        hedge = (p.get("ps") or "BOTH").upper()
        side = hedge.lower() if hedge in ("LONG", "SHORT") and size else (
            "long" if size > 0 else "short" if size < 0 else "flat")
        out.append(PositionObs(p["s"], size, dec(p.get("ep")), side,
                               "cross" if p.get("iw") is None else "isolated", when,
                               hedge=hedge.lower()))
    return out
