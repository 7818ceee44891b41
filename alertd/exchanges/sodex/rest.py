"""SoDEX over REST (no auth): `/api/v1/{market}/accounts/{address}/balances`, `/orders`,
`/positions` (perps), and `/orders/history` and `/trades` by `startTime`/`endTime` in ms;
replies are `{code, message, data}` and `data` may be null.
"""

from __future__ import annotations

import time
from typing import Any

from alertd.common.redact import safe_text
from alertd.domain.account import Account
from alertd.exchanges.common import MAX_FILLS, Budget, items
from alertd.transport.http import Http, RestError


class SodexCatchUp:
    """The account as REST states it, turned into the pushes the stream would have sent.

    The REST rows use the SDK's long keys (`orderID`, `origQty`, `tradeID`, `quantity`, ...;
    sodex-python-sdk `client/types.py`), not the stream's short ones, and `/state` holds only
    the account's ids: balances, open orders and positions have endpoints of their own, the
    latter two wrapped as `{"orders": [...]}`, balances as `{"balances": [...]}`."""

    def __init__(self, account: Account, market: str) -> None:
        self.base = f"{account.rest_base()}/api/v1/{market}/accounts/{account.user}"
        self.market = market

    def frames(self, http: Http, since: float) -> list[dict[str, Any]]:
        budget = Budget()
        window = {"startTime": int(since * 1000), "endTime": int(time.time() * 1000),
                  "limit": MAX_FILLS}

        def get(path: str, params: dict[str, Any] | None = None) -> Any:
            budget.check()
            return unwrap(http.get(self.base + path, params=params))

        balances = [balance_row(b, self.market) for b in _wrapped(get("/balances"), "balances")]
        state: dict[str, Any] = {"B": balances}
        if self.market == "perps":
            state["P"] = [position_row(p) for p in _wrapped(get("/positions"), "orders")]
        orders = [order_row(o) for o in _wrapped(get("/orders"), "orders")]
        orders += [order_row(o) for o in items(get("/orders/history", window))]
        trades = sorted((trade_row(t) for t in items(get("/trades", window))),
                        key=lambda t: t.get("E") or 0)
        frames: list[dict[str, Any]] = [
            {"channel": "accountState", "type": "snapshot", "data": state}]
        if orders:
            frames.append({"channel": "accountOrderUpdate", "type": "update", "data": orders})
        if trades:
            frames.append({"channel": "accountTrade", "type": "update", "data": trades})
        return frames


def _wrapped(data: Any, key: str) -> list[Any]:
    """`{key: [...]}` (or a bare list, or null) as a list."""
    return items(data.get(key) if isinstance(data, dict) else data)


def _keys(row: Any, mapping: dict[str, str]) -> dict[str, Any]:
    """A REST row in the stream's short keys; a row that has none of the long keys (already
    short) is kept as it is, and what is missing stays missing for the schema to judge."""
    if not isinstance(row, dict) or not any(k in row for k in mapping):
        return row if isinstance(row, dict) else {}
    return {short: row[long] for long, short in mapping.items()
            if row.get(long) is not None}


def order_row(row: Any) -> dict[str, Any]:
    out = _keys(row, {"orderID": "i", "clOrdID": "c", "symbol": "s", "side": "S", "type": "o",
                      "timeInForce": "f", "price": "p", "origQty": "q", "status": "X",
                      "executedQty": "z"})
    if isinstance(row, dict) and "E" not in out:
        stamp = row.get("updatedAt") or row.get("createdAt")
        if stamp:
            out["E"] = stamp
    return out


def trade_row(row: Any) -> dict[str, Any]:
    return _keys(row, {"tradeID": "t", "orderID": "i", "clOrdID": "c", "symbol": "s",
                       "side": "S", "price": "p", "quantity": "q", "fee": "f", "isMaker": "m",
                       "time": "E"})


def balance_row(row: Any, market: str) -> dict[str, Any]:
    """Spot balances as total and locked; perps as the wallet balance (`wb`), its total."""
    if market == "perps":
        return _keys(row, {"id": "i", "coin": "a", "total": "wb"})
    return _keys(row, {"id": "i", "coin": "a", "total": "t", "locked": "l"})


def position_row(row: Any) -> dict[str, Any]:
    out = _keys(row, {"symbol": "s", "quantity": "sz", "entryPrice": "ep",
                      "positionSide": "ps", "symbolID": "i"})
    if isinstance(row, dict) and str(row.get("marginMode", "")).lower() == "isolated" \
            and row.get("margin") is not None:
        out["iw"] = row["margin"]
    return out


def unwrap(body: Any) -> Any:
    """The `data` of a `{code, data}` reply; a non-zero code is a RestError with its message."""
    if not isinstance(body, dict) or "code" not in body:
        return body
    if body.get("code") not in (0, None):
        message = body.get("message") or body.get("msg") or body.get("error")
        raise RestError(f"SoDEX answered code {body.get('code')}: {safe_text(message, 120)}")
    return body.get("data")
