"""Exchange frames → exchange-neutral observations (what the account looks like now).

Observations are not yet events: whether something changed is decided by `detect`, which
knows the last state. Statuses are mapped to one lower-case vocabulary here.
"""

from __future__ import annotations

from dataclasses import dataclass
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
    if sub_type == "balance":
        out: list[Observation] = []
        for item in frame["balance"]:
            free, locked = dec(item["free"]), dec(item["locked"])
            out.append(BalanceObs(item["asset"].lower(), free, locked, free + locked,
                                  iso(None, now)))
        return out
    p = frame["dlta_points"]
    return [PointsObs(dec(p.get("delta")), dec(p["new_total"]), dec(p.get("season_points")),
                      p.get("source_type"), p.get("source_ref"), p["league"].lower(),
                      iso(None, now))]


def _dd_order(o: dict[str, Any], now: float) -> OrderObs:
    order_id, symbol, side = str(o["id"]), o["symbol"], o["side"].lower()
    when = o.get("updated_at") or iso(None, now)
    fills = [
        FillObs(trade_id=str(r["id"]), order_id=order_id, symbol=symbol, side=side,
                price=dec(r.get("execution_price")), qty=dec(r["filled_base_qty"]),
                quote_qty=dec(r.get("filled_quote_qty")), fee=dec(r.get("commission")),
                fee_asset=r.get("commission_unit"), role=_lower(r.get("role")),
                time=r.get("created_at") or when)
        for r in o.get("order_execution_records") or ()
    ]
    status = o["status"].lower()
    return OrderObs(order_id=order_id, symbol=symbol, side=side, type=_lower(o.get("type")),
                    status=DELTADEFI_STATUS.get(status, status), price=dec(o.get("price")),
                    qty=dec(o.get("base_qty")), filled_qty=dec(o.get("executed_base_qty")),
                    avg_price=dec(o.get("executed_price")), fills=fills, time=when)


def sodex(channel: str, frame: dict[str, Any], market: str, now: float) -> list[Observation]:
    """Observations in one validated SoDEX push."""
    data = frame["data"]
    items = data if isinstance(data, list) else [data]
    out: list[Observation] = []
    for d in items:
        when = iso(d.get("E"), now)
        if channel == "accountTrade":
            price, qty = dec(d["p"]), dec(d["q"])
            out.append(FillObs(
                trade_id=f"{d['s']}:{d['t']}", order_id=str(d["i"]), symbol=d["s"],
                side=d["S"].lower(), price=price, qty=qty, quote_qty=price * qty,
                fee=dec(d.get("f")), fee_asset=None,
                role=None if d.get("m") is None else ("maker" if d["m"] else "taker"), time=when))
        elif channel == "accountOrderUpdate":
            status = d["X"].upper()
            normal = "pending" if status.startswith("PENDING") else SODEX_STATUS.get(
                status, status.lower())
            out.append(OrderObs(
                order_id=str(d["i"]), symbol=d["s"], side=d["S"].lower(), type=_lower(d.get("o")),
                status=normal, price=dec(d.get("p")), qty=dec(d.get("q")),
                filled_qty=dec(d.get("z")), avg_price=None, fills=None, time=when))
        else:
            out.extend(_sx_account(d, market, when))
    return out


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
                               "cross" if p.get("iw") is None else "isolated", when))
    return out
