"""The simulated exchange's REST side: the account as the pushed frames left it.

Every frame the simulator pushes (or is told happened while nobody listened) updates this
record, and the REST endpoints of both exchanges answer from it in their documented shapes,
so catch-up is exercised end to end on 127.0.0.1.
"""

from __future__ import annotations

import json
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

LIVE = frozenset({"open", "partially_filled", "building", "processing"})


class SimRest:
    """Answers `GET` paths of both REST APIs: (status, JSON text), or None if not REST."""

    def __init__(self, valid_keys: set[str] | None) -> None:
        self.valid_keys = valid_keys
        self.failing = False
        self.requests: list[str] = []
        self._lock = threading.Lock()
        self._dd_balance: dict[str, list[dict[str, Any]]] = {}
        self._dd_orders: dict[str, dict[str, dict[str, Any]]] = {}
        self._sx_balances: dict[tuple[str, str], dict[str, Any]] = {}
        self._sx_positions: dict[tuple[str, str], dict[str, Any]] = {}
        self._sx_orders: dict[tuple[str, str], dict[str, Any]] = {}
        self._sx_trades: dict[tuple[str, str], list[dict[str, Any]]] = {}

    # --- what happened on the account -------------------------------------------------------

    def deltadefi(self, api_key: str, frame: Any) -> None:
        frame = _parsed(frame)
        with self._lock:
            if frame.get("sub_type") == "balance":
                self._dd_balance[api_key] = [
                    {**b, "free": str(b.get("free")), "locked": str(b.get("locked"))}
                    for b in frame.get("balance") or ()]
            elif frame.get("sub_type") == "order_info" and isinstance(frame.get("order"), dict):
                order = frame["order"]
                self._dd_orders.setdefault(api_key, {})[str(order.get("id"))] = order

    def sodex(self, user: str, market: str, channel: str, data: Any) -> None:
        key = (user.lower(), market)
        rows = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
        with self._lock:
            for row in rows:
                if channel in ("accountUpdate", "accountState"):
                    for b in row.get("B") or ():
                        self._sx_balances.setdefault(key, {})[b.get("a")] = b
                    for p in row.get("P") or ():
                        self._sx_positions.setdefault(key, {})[(p.get("s"), p.get("ps"))] = p
                elif channel == "accountOrderUpdate":
                    self._sx_orders.setdefault(key, {})[str(row.get("i"))] = row
                elif channel == "accountTrade":
                    self._sx_trades.setdefault(key, []).append(row)

    # --- the endpoints --------------------------------------------------------------------------

    def answer(self, path: str, headers: Any) -> tuple[int, str] | None:
        """The reply to a REST request; it is listed in `requests` once its reply is made."""
        reply = self._answer(path, headers)
        if reply is not None:
            self.requests.append(urlsplit(path).path)
        return reply

    def _answer(self, path: str, headers: Any) -> tuple[int, str] | None:
        parts = urlsplit(path)
        if parts.path.startswith("/api/v1/"):
            segments = parts.path.strip("/").split("/")
            if len(segments) < 6 or segments[3] != "accounts":
                return 404, '{"code":404,"message":"no such endpoint"}'
            if self.failing:
                return 503, '{"code":503,"message":"maintenance"}'
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            return self._sodex(segments[4], segments[2], "/".join(segments[5:]), query)
        if parts.path.startswith("/accounts/") and parts.path != "/accounts/stream":
            if self.failing:
                return 503, '{"error":"maintenance"}'
            key = headers.get("X-API-KEY", "")
            if self.valid_keys is not None and key not in self.valid_keys:
                return 401, '{"error":"invalid api key"}'
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            return self._deltadefi(key, parts.path[len("/accounts/"):], query)
        return None

    def _deltadefi(self, key: str, what: str, query: dict[str, str]) -> tuple[int, str]:
        with self._lock:
            orders = list(self._dd_orders.get(key, {}).values())
            if what == "balance":
                return 200, json.dumps(self._dd_balance.get(key, []))
            if what == "open-orders":
                return 200, json.dumps([o for o in orders if o.get("status") in LIVE])
            if what == "trade-orders":
                page, limit = int(query.get("page", 1)), min(int(query.get("limit", 10)), 250)
                newest = sorted(orders, key=lambda o: o.get("updated_at") or "", reverse=True)
                chunk = newest[(page - 1) * limit: page * limit]
                return 200, json.dumps({"data": chunk, "total_count": len(orders),
                                        "total_page": -(-len(orders) // limit)})
            if what.startswith("order/"):
                order = self._dd_orders.get(key, {}).get(what.split("/", 1)[1])
                if order is None:
                    return 404, '{"error":"order not found"}'
                return 200, json.dumps({"order": order})
        return 404, '{"error":"no such endpoint"}'

    def _sodex(self, user: str, market: str, what: str,
               query: dict[str, str]) -> tuple[int, str]:
        """The SDK's REST shapes (long keys, sodex-python-sdk `client/types.py`), built from
        what was pushed in the stream's short keys."""
        key = (user.lower(), market)
        start, end = int(query.get("startTime", 0)), int(query.get("endTime", 2**62))
        with self._lock:
            orders = list(self._sx_orders.get(key, {}).values())
            if what == "state":
                data: Any = {"user": user, "aid": 1, "uid": 1}
            elif what == "balances":
                data = {"balances": [
                    {"id": b.get("i", 0), "coin": b.get("a"), "total": b.get("t", b.get("wb")),
                     "locked": b.get("l", "0")}
                    for b in self._sx_balances.get(key, {}).values()]}
            elif what == "positions":
                data = {"orders": [
                    {"symbol": p.get("s"), "quantity": p.get("sz"), "entryPrice": p.get("ep"),
                     "positionSide": p.get("ps") or "BOTH", "margin": p.get("iw"),
                     "marginMode": "cross" if p.get("iw") is None else "isolated"}
                    for p in self._sx_positions.get(key, {}).values()]}
            elif what == "orders":
                data = {"orders": [_sx_order(o) for o in orders
                                   if str(o.get("X")).upper() in ("NEW", "PARTIALLY_FILLED")]}
            elif what == "orders/history":
                data = [_sx_order(o) for o in orders
                        if start <= int(o.get("E") or 0) <= end] or None
            elif what == "trades":
                data = [_sx_trade(t) for t in self._sx_trades.get(key, [])
                        if start <= int(t.get("E") or 0) <= end] or None
            else:
                return 404, '{"code":404,"message":"no such endpoint"}'
        return 200, json.dumps({"code": 0, "message": "ok", "data": data})


def _sx_order(o: dict[str, Any]) -> dict[str, Any]:
    return {"orderID": o.get("i"), "clOrdID": o.get("c", ""), "symbol": o.get("s"),
            "side": o.get("S"), "type": o.get("o"), "timeInForce": o.get("f"),
            "price": o.get("p"), "origQty": o.get("q"), "executedQty": o.get("z"),
            "status": o.get("X"), "createdAt": o.get("E"), "updatedAt": o.get("E")}


def _sx_trade(t: dict[str, Any]) -> dict[str, Any]:
    return {"tradeID": t.get("t"), "orderID": t.get("i"), "clOrdID": t.get("c", ""),
            "symbol": t.get("s"), "side": t.get("S"), "price": t.get("p"),
            "quantity": t.get("q"), "fee": t.get("f"), "feeCoin": "", "time": t.get("E"),
            "isMaker": t.get("m")}


def _parsed(frame: Any) -> dict[str, Any]:
    if isinstance(frame, dict):
        return frame
    try:
        value = json.loads(frame)
    except (ValueError, TypeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}
