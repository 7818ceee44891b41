"""SoDEX pushes (and REST rows in the same short keys) as observations.

The keys are the ones sodex-ts-sdk's parsers read (`src/ws/parsers/*.ts`, `perps/client.ts`;
see `contracts/sodex/`): an `accountState` is the whole account, so its balance and position
lists are complete; an `accountUpdate` lists only what changed; an `accountEvent` is read only
when it is a liquidation, and never moves a position."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from alertd.domain.observations import (
    BalanceObs,
    CompleteObs,
    FillObs,
    LiquidationObs,
    MarginObs,
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
MARGIN_CODES = {1: "isolated", 2: "cross"}
"""The margin modes' codes (sodex-go-sdk-public `common/enums/margin_mode.go`, SKILL.md:
ISOLATED=1, CROSS=2): the python SDK's test fixture sends them where TS reads names."""


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
            out.append(_order(d, when))
        elif channel == "accountEvent":
            out.extend(_event(d, when))
        else:
            out.extend(_sx_account(d, market, when, complete=channel == "accountState"))
    return out


def margin_mode(value: Any) -> str | None:
    """`cross` or `isolated` from a mode's name or code; None for anything else."""
    if isinstance(value, str):
        mode = value.strip().lower()
        return mode if mode in ("cross", "isolated") else None
    if isinstance(value, int) and not isinstance(value, bool):
        return MARGIN_CODES.get(value)
    return None


def _order(d: dict[str, Any], when: str) -> OrderObs:
    status = d["X"].upper()
    normal = "pending" if status.startswith("PENDING") else STATUS.get(status, status.lower())
    reason = d.get("r")
    return OrderObs(
        order_id=str(d["i"]), symbol=d["s"], side=d["S"].lower(), type=lower(d.get("o")),
        status=normal, price=dec(d.get("p")), qty=nonzero(d.get("q")),
        filled_qty=dec(d.get("z")), avg_price=None, fills=None, time=when,
        reason=reason if isinstance(reason, str) and reason else None,
        exec_type=lower(d.get("x")))


def sx_fill(d: dict[str, Any], when: str) -> FillObs:
    """One SoDEX trade (the accountTrade push or a REST trade row); its id is (symbol, t)."""
    price, qty = dec(d["p"]), dec(d["q"])
    return FillObs(
        trade_id=f"{d['s']}:{d['t']}", order_id=str(d["i"]), symbol=d["s"],
        side=d["S"].lower(), price=price, qty=qty, quote_qty=price * qty,
        fee=dec(d.get("f")), fee_asset=None,
        role=None if d.get("m") is None else ("maker" if d["m"] else "taker"), time=when,
        ts=epoch(d.get("T") or d.get("E")))


def _side(hedge: str, size: Decimal | None) -> str:
    """A leg's side: its hedge-mode leg, else the sign of a one-way position's size."""
    if hedge in ("LONG", "SHORT") and size:
        return hedge.lower()
    return "long" if size and size > 0 else "short" if size and size < 0 else "flat"


def _sx_account(d: dict[str, Any], market: str, when: str,
                complete: bool) -> list[Observation]:
    """Balances and positions; an accountState states every one (`complete`): a list it
    carries, even null (the server's empty list), is the whole list, one it leaves out says
    nothing."""
    out: list[Observation] = []
    assets: set[tuple[str, str]] = set()
    for b in d.get("B") or ():
        if market == "spot":
            total, locked = dec(b["t"]), dec(b["l"])
            out.append(BalanceObs(b["a"], total - locked, locked, total, when))
        elif "wb" in b:
            wallet = dec(b["wb"])
            out.append(BalanceObs(b["a"], wallet, Decimal(0), wallet, when))
        else:
            continue
        assets.add((b["a"], ""))
    configured = {s["s"]: margin_mode(s.get("m")) for s in d.get("S") or ()}
    legs: set[tuple[str, str]] = set()
    for p in d.get("P") or ():
        size = dec(p["sz"])
        hedge = (p.get("ps") or "BOTH").upper()
        mode = margin_mode(p.get("m")) or configured.get(p["s"]) or (
            "isolated" if p.get("iw") is not None else None)
        out.append(PositionObs(p["s"], size, dec(p.get("ep")), _side(hedge, size), mode, when,
                               hedge=hedge.lower(), liquidation_price=dec(p.get("lp")),
                               unrealized_pnl=dec(p.get("ur")), leverage=dec(p.get("l"))))
        legs.add((p["s"], hedge.lower()))
    if market == "perps" and d.get("av") is not None:
        out.append(MarginObs(dec(d["av"]), dec(d.get("am")), dec(d.get("cm")),
                             dec(d.get("ocm")), when))
    if complete and "B" in d:
        out.append(CompleteObs("balance", frozenset(assets), when))
    if complete and market == "perps" and "P" in d:
        out.append(CompleteObs("position", frozenset(legs), when))
    return out


def _event(d: dict[str, Any], when: str) -> list[Observation]:
    """A liquidation, one per position it names (sodex-ts-sdk `src/ws/parsers/
    liquidation.ts`: mm the margin mode, av the account value, P[].mp the mark price, lp the
    liquidation price); an event of another type is none of alertd's business."""
    if str(d.get("type", "")).lower() != "liquidation":
        return []
    mode, value = margin_mode(d.get("mm")), dec(d.get("av"))
    stamp = f"{d.get('E')}:{d.get('lid')}"
    ts = epoch(d.get("E"))
    out: list[Observation] = []
    for p in d.get("P") or ():
        size = dec(p["sz"])
        hedge = (p.get("ps") or "BOTH").upper()
        side = _side(hedge, size)
        out.append(LiquidationObs(
            f"{stamp}:{p['s']}:{hedge}", p["s"], None if side == "flat" else side, size,
            dec(p.get("mp")), dec(p.get("lp")), mode, value, when, hedge=hedge.lower(),
            ts=ts))
    if not out:  # a liquidation naming no position: the account's, still news
        out.append(LiquidationObs(stamp, None, None, None, None, None, mode, value, when, ts=ts))
    return out
