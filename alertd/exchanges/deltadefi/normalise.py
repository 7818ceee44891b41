"""DeltaDeFi frames (order_info, balance, dlta_points and the older list types) as
observations."""

from __future__ import annotations

from typing import Any

from alertd.domain.observations import (
    BalanceObs,
    FillObs,
    Observation,
    OrderObs,
    PointsObs,
    dec,
    iso,
    lower,
    nonzero,
    stamp,
)
from alertd.exchanges.deltadefi import assets

STATUS = {
    "building": "pending", "processing": "pending", "open": "open", "closed": "filled",
    "failed": "failed", "cancelled": "cancelled", "partially_filled": "partially_filled",
    "fully_filled": "filled", "partially_cancelled": "partially_cancelled",
}

def normalise(sub_type: str, frame: dict[str, Any], now: float) -> list[Observation]:
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
    """An order with its records; `updated_at` is believed only where plausible (see
    `stamp`), else the frame's receive time stands in."""
    order_id, symbol, side = dd_order_id(o), o["symbol"], o["side"].lower()
    when = stamp(o.get("updated_at"), now)
    fills = [_dd_record(r, order_id, symbol, side, when, now)
             for r in o.get("order_execution_records") or ()]
    status = o["status"].lower()
    unit = o.get("commission_unit")
    commission, unit = assets.fee(dec(o.get("commission")), unit if isinstance(unit, str)
                                  and unit else None)
    return OrderObs(order_id=order_id, symbol=symbol, side=side, type=lower(o.get("type")),
                    status=STATUS.get(status, status), price=dec(o.get("price")),
                    qty=nonzero(o.get("base_qty")), filled_qty=dec(o.get("executed_base_qty")),
                    avg_price=nonzero(o.get("executed_price")), fills=fills, time=when[0],
                    executed_quote=nonzero(o.get("executed_quote_qty")),
                    commission=commission, commission_unit=unit)


def _dd_record(r: dict[str, Any], order_id: str, symbol: str, side: str,
               when: tuple[str, float], now: float) -> FillObs:
    """One execution record; without its own plausible `created_at` it takes the order's."""
    at, ts = stamp(r["created_at"], now) if r.get("created_at") else when
    unit = r.get("commission_unit")
    fee, fee_asset = assets.fee(dec(r.get("commission")), unit if isinstance(unit, str)
                                and unit else None)
    return FillObs(trade_id=str(r["id"]), order_id=order_id, symbol=symbol, side=side,
                   price=dec(r.get("execution_price")), qty=dec(r["filled_base_qty"]),
                   quote_qty=dec(r.get("filled_quote_qty")), fee=fee,
                   fee_asset=fee_asset, role=lower(r.get("role")), time=at,
                   ts=ts)


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
                                  (item.get("side") or "-").lower(), (iso(None, now), now),
                                  now))
    return out
