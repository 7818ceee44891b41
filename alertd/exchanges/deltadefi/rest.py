"""DeltaDeFi over REST (header `X-API-KEY`): balances, open orders, recent trade orders.

`/accounts/trade-orders` is paged (`page`, `limit` at most 250); an order listed without its
execution records is asked for by `/accounts/order/{id}`, at most DETAILS of them per gap.
"""

from __future__ import annotations

from typing import Any

from alertd.domain.account import Account
from alertd.domain.observations import epoch
from alertd.exchanges.common import MAX_FILLS, Budget, items
from alertd.exchanges.deltadefi.account import rest_base
from alertd.exchanges.deltadefi.normalise import dd_order_id
from alertd.transport.http import Http

PAGE = 250
PAGES = 4
DETAILS = 20


class DeltaDefiCatchUp:
    def __init__(self, account: Account) -> None:
        self.base = rest_base(account)
        self._headers = {"X-API-KEY": account.api_key or ""}

    def frames(self, http: Http, since: float) -> list[dict[str, Any]]:
        budget = Budget()
        get = self._get(http, budget)
        balances = items(get("/accounts/balance"), "data", "balances")
        orders: dict[str, dict[str, Any]] = {}
        for o in items(get("/accounts/open-orders"), "data", "orders"):
            orders[dd_order_id(o)] = o
        fills = 0
        for page in range(1, PAGES + 1):
            batch = items(get("/accounts/trade-orders", page=page, limit=PAGE),
                          "data", "orders")
            recent = [o for o in batch if (_when(o) or since) >= since]
            for o in recent:
                orders[dd_order_id(o)] = o
                fills += len(o.get("order_execution_records") or ())
            if len(batch) < PAGE or len(recent) < len(batch) or fills >= MAX_FILLS:
                break
        details = 0
        for order_id, o in orders.items():
            if details >= DETAILS:
                break
            executed = str(o.get("executed_base_qty") or "0").strip("0.")
            if executed and not o.get("order_execution_records"):
                details += 1
                full = get(f"/accounts/order/{order_id}")
                if isinstance(full, dict):
                    orders[order_id] = full.get("order") or full
        ordered = sorted(orders.values(), key=lambda o: _when(o) or 0.0)
        return [{"type": "Account", "sub_type": "balance", "balance": balances}] + [
            {"type": "Account", "sub_type": "order_info", "order": o} for o in ordered]

    def _get(self, http: Http, budget: Budget) -> Any:
        def get(path: str, **params: Any) -> Any:
            budget.check()
            return http.get(self.base + path, params=params or None, headers=self._headers)
        return get


def _when(order: dict[str, Any]) -> float | None:
    return epoch(order.get("updated_at")) or epoch(order.get("created_at"))
