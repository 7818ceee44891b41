"""SoDEX over REST (no auth), as `contracts/sodex/` publishes it:
`GET /api/v1/{market}/accounts/{address}/balances`, `/orders`, `/positions` (perps), and
`/orders/history` and `/trades` by `startTime`/`endTime` (ms, inclusive) and `limit` (at most
1000), paged; replies are `{code, message, data}` and `data` may be null.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from alertd.common.redact import safe_text
from alertd.domain.account import Account
from alertd.exchanges.common import Budget, items
from alertd.transport.http import Http, RestError

log = logging.getLogger("alertd.stream")

PAGE = 1000
"""The SDKs' page cap: sodex-go-sdk-public `client/types.go` HistoryFilter ('API caps at
1000'), sodex-python-sdk-public `client/types.py` HistoryFilter."""
MAX_PAGES = 10
"""Pages per history call and catch-up: 10,000 rows, far more than a day holds for one
account; past that the rest is logged as left out, not fetched forever."""


class SodexCatchUp:
    """The account as REST states it, turned into the pushes the stream would have sent.

    The REST rows use the SDK's long keys (`orderID`, `origQty`, `tradeID`, `quantity`, ...;
    `contracts/sodex/`), not the stream's short ones. Balances and positions come whole, so
    the `accountState` made of them is a complete list (a position it lacks is closed)."""

    def __init__(self, account: Account, market: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.base = f"{account.rest_base()}/api/v1/{market}/accounts/{account.user}"
        self.market = market
        self.clock = clock

    def frames(self, http: Http, since: float) -> list[dict[str, Any]]:
        budget = Budget()
        window = (int(since * 1000), int(self.clock() * 1000))

        def get(path: str, params: dict[str, Any] | None = None) -> Any:
            budget.check()
            return unwrap(http.get(self.base + path, params=params))

        balances = [balance_row(b, self.market) for b in _wrapped(get("/balances"), "balances")]
        state: dict[str, Any] = {"B": balances}
        if self.market == "perps":
            state["P"] = [position_row(p) for p in positions(get("/positions"))
                          if not (isinstance(p, dict) and p.get("active") is False)]
        orders = [order_row(o) for o in _wrapped(get("/orders"), "orders")]
        orders += [order_row(o) for o in history(get, "/orders/history", window, _order_key)]
        trades = sorted((trade_row(t) for t in history(get, "/trades", window, _trade_key)),
                        key=lambda t: t.get("E") or 0)
        frames: list[dict[str, Any]] = [
            {"channel": "accountState", "type": "snapshot", "data": state}]
        if orders:
            frames.append({"channel": "accountOrderUpdate", "type": "update", "data": orders})
        if trades:
            frames.append({"channel": "accountTrade", "type": "update", "data": trades})
        return frames


def history(get: Callable[[str, dict[str, Any]], Any], path: str, window: tuple[int, int],
            key: Callable[[dict[str, Any]], Any]) -> list[dict[str, Any]]:
    """Every row of a history call in the window, page by page.

    No SDK publishes the rows' order or a cursor; a full page (PAGE rows) means more lie in
    the window. The bound the page reached moves (startTime if the rows come oldest first,
    endTime if newest first; both are inclusive) and rows already read are dropped."""
    start, end = window
    rows: dict[Any, dict[str, Any]] = {}
    for _ in range(MAX_PAGES):
        page = [r for r in items(get(path, {"startTime": start, "endTime": end,
                                             "limit": PAGE})) if isinstance(r, dict)]
        fresh = [r for r in page if key(r) not in rows]
        rows.update((key(r), r) for r in fresh)
        stamps = [s for s in (_stamp(r) for r in page) if s is not None]
        if len(page) < PAGE or not fresh or not stamps:
            return list(rows.values())
        if stamps[0] <= stamps[-1]:
            start = max(stamps)
        else:
            end = min(stamps)
    log.warning("SoDEX %s: more than %d rows in the catch-up window; the rest is left out",
                path, PAGE * MAX_PAGES)
    return list(rows.values())


def _stamp(row: dict[str, Any]) -> int | None:
    value = row.get("time", row.get("updatedAt", row.get("createdAt")))
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _order_key(row: dict[str, Any]) -> Any:
    return row.get("orderID"), row.get("updatedAt"), row.get("status")


def _trade_key(row: dict[str, Any]) -> Any:
    return row.get("symbol"), row.get("tradeID")


def _wrapped(data: Any, key: str) -> list[Any]:
    """`{key: [...]}` (or a bare list, or null) as a list."""
    return items(data.get(key) if isinstance(data, dict) else data)


def positions(data: Any) -> list[Any]:
    """The open positions in every published shape: `{positions: [...]}` (sodex-ts-sdk
    `perps/client.ts` parsePerpsOpenPositions, the newer python SDK) or `{orders: [...]}`
    (sodex-go-sdk-public `client/perps.go` PerpsPositions, the older python SDK); null is
    none. A reply holding neither is not read as "no positions" (that would close them all)."""
    if data is None or isinstance(data, list):
        return items(data)
    if isinstance(data, dict):
        for key in ("positions", "orders"):
            if key in data:
                return items(data[key])
    raise RestError("SoDEX answered /positions with neither 'positions' nor 'orders'")


def _keys(row: Any, mapping: dict[str, str]) -> dict[str, Any]:
    """A REST row in the stream's short keys; a row that has none of the long keys (already
    short) is kept as it is, and what is missing stays missing for the schema to judge."""
    if not isinstance(row, dict) or not any(k in row for k in mapping):
        return row if isinstance(row, dict) else {}
    out: dict[str, Any] = {}
    for long, short in mapping.items():
        if row.get(long) is not None and short not in out:
            out[short] = row[long]
    return out


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
    """A position in any published shape (docs/TS: side, size, avgEntryPrice; Go/python:
    positionSide, quantity, entryPrice, liquidationPrice, unrealizedPnl, margin) as the
    stream's keys; `m` the margin mode, `iw` the isolated margin."""
    out = _keys(row, {"symbol": "s", "size": "sz", "quantity": "sz", "avgEntryPrice": "ep",
                      "entryPrice": "ep", "side": "ps", "positionSide": "ps",
                      "marginMode": "m", "liquidationPrice": "lp", "unrealizedPnl": "ur",
                      "leverage": "l", "id": "i", "symbolID": "i"})
    if isinstance(row, dict) and str(row.get("marginMode", "")).lower() == "isolated" \
            and row.get("margin") is not None:
        out["iw"] = row["margin"]
    return out


def unwrap(body: Any) -> Any:
    """The `data` of a `{code, data}` reply; a non-zero code is a RestError with its message
    (TS reads `error`, Go and python `message`, then `msg`, then `error`)."""
    if not isinstance(body, dict) or "code" not in body:
        return body
    if body.get("code") not in (0, None):
        message = body.get("message") or body.get("msg") or body.get("error")
        raise RestError(f"SoDEX answered code {body.get('code')}: {safe_text(message, 120)}")
    return body.get("data")
