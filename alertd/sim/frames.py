"""Frames as the exchanges document them, stamped with the time they are given.

The demo stamps them with the wall clock it runs on; a test on a fake clock passes its
clock's time as `at`, so what it checks never depends on the hour it runs at.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

from alertd.domain.observations import iso


def _at(at: float | None) -> float:
    return time.time() if at is None else at


def dd_order(order_id: str, status: str, records: list[tuple[str, str]], executed: str,
             qty: str = "2000", price: str = "0.93", *, at: float | None = None
             ) -> dict[str, Any]:
    """A DeltaDeFi order_info frame as the exchange documents it, its records stamped `at`."""
    now = _at(at)
    recs = [{"id": rid, "order_id": order_id, "execution_price": price, "filled_base_qty": q,
             "filled_quote_qty": str(Decimal(q) * Decimal(price)), "commission": "0.1",
             "commission_unit": "ada", "role": "taker", "created_at": iso(None, now + i / 1000)}
            for i, (rid, q) in enumerate(records)]
    return {"type": "Account", "sub_type": "order_info", "order": {
        "id": order_id, "account_id": "acc-1", "status": status, "symbol": "ADAUSDM",
        "base_qty": qty, "quote_qty": str(Decimal(qty) * Decimal(price)), "side": "buy",
        "price": price, "type": "limit", "locked_base_qty": qty, "executed_base_qty": executed,
        "executed_quote_qty": "0", "executed_price": price, "commission_unit": "ada",
        "commission": "0", "commission_rate_bp": 10, "created_at": iso(None, now - 120),
        "updated_at": iso(None, now), "order_execution_records": recs}}


def dd_balance(ada: str, usdm: str = "1153.006812") -> str:
    """Balances arrive as JSON numbers on this stream; kept as text to stay exact."""
    return ('{"type":"Account","sub_type":"balance","balance":['
            f'{{"asset":"usdm","asset_unit":"5066","free":{usdm},"locked":0}},'
            f'{{"asset":"ada","asset_unit":"","free":{ada},"locked":0}}]}}')


def dd_points(total: str, league: str, delta: str = "150") -> dict[str, Any]:
    return {"type": "Account", "sub_type": "dlta_points", "dlta_points": {
        "delta": delta, "new_total": total, "season_points": "5150", "source_type": "trade",
        "source_ref": "o-1", "league": league}}


def sx_order(status: str, filled: str, *, at: float | None = None) -> dict[str, Any]:
    return {"E": int(_at(at) * 1000), "s": "vBTC_vUSDC", "c": "c-1", "i": 7001, "S": "BUY",
            "o": "LIMIT", "f": "GTC", "p": "60000", "q": "0.5", "X": status, "z": filled}


def sx_trade(trade_id: int, qty: str, *, at: float | None = None) -> dict[str, Any]:
    return {"E": int(_at(at) * 1000), "t": trade_id, "s": "vBTC_vUSDC", "i": 7001,
            "c": "c-1", "S": "BUY", "p": "60000", "q": qty, "f": "0.6", "m": False}


def sx_balances(usdc_total: str, usdc_locked: str = "0", *, at: float | None = None
                ) -> dict[str, Any]:
    return {"E": int(_at(at) * 1000), "h": 2211, "B": [
        {"i": 0, "a": "vUSDC", "t": usdc_total, "l": usdc_locked},
        {"i": 1, "a": "vBTC", "t": "0.5", "l": "0"}]}


def sx(channel: str, data: Any, kind: str = "update") -> str:
    """A SoDEX push on `channel`, as text."""
    return json.dumps({"channel": channel, "type": kind, "data": data})
