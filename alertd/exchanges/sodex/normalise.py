"""SoDEX pushes (and REST rows in the same short keys) as observations."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from alertd.domain.observations import (
    BalanceObs,
    FillObs,
    Observation,
    OrderObs,
    PositionObs,
    dec,
    epoch,
    iso,
    lower,
    nonzero,
)

STATUS = {
    "NEW": "open", "PARTIALLY_FILLED": "partially_filled", "FILLED": "filled",
    "CANCELED": "cancelled", "CANCELLED": "cancelled", "REJECTED": "rejected",
    "EXPIRED": "expired", "TRIGGERED": "triggered", "REPLACED": "replaced",
}

def normalise(channel: str, frame: dict[str, Any], market: str, now: float) -> list[Observation]:
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
            normal = "pending" if status.startswith("PENDING") else STATUS.get(
                status, status.lower())
            out.append(OrderObs(
                order_id=str(d["i"]), symbol=d["s"], side=d["S"].lower(), type=lower(d.get("o")),
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
