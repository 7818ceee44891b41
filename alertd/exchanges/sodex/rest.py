"""SoDEX over REST (no auth): `/api/v1/{market}/accounts/{address}/state`, `/orders/history`
and `/trades` by `startTime`/`endTime` in ms; replies are `{code, data}` and `data` may be null.
"""

from __future__ import annotations

import time
from typing import Any

from alertd.config import Account
from alertd.exchanges.common import MAX_FILLS, Budget, items
from alertd.http import Http, RestError
from alertd.redact import safe_text


class SodexCatchUp:
    def __init__(self, account: Account, market: str) -> None:
        self.base = f"{account.rest_base()}/api/v1/{market}/accounts/{account.user}"

    def frames(self, http: Http, since: float) -> list[dict[str, Any]]:
        budget = Budget()
        window = {"startTime": int(since * 1000), "endTime": int(time.time() * 1000),
                  "limit": MAX_FILLS}

        def get(path: str, params: dict[str, Any] | None = None) -> Any:
            budget.check()
            return unwrap(http.get(self.base + path, params=params))

        state = get("/state")
        orders = items(get("/orders/history", window))
        trades = sorted(items(get("/trades", window)),
                        key=lambda t: (t.get("T") or t.get("E") or 0) if isinstance(t, dict)
                        else 0)
        frames: list[dict[str, Any]] = [
            {"channel": "accountState", "type": "snapshot",
             "data": state if isinstance(state, dict) else {}}]
        if orders:
            frames.append({"channel": "accountOrderUpdate", "type": "update", "data": orders})
        if trades:
            frames.append({"channel": "accountTrade", "type": "update", "data": trades})
        return frames


def unwrap(body: Any) -> Any:
    """The `data` of a `{code, data}` reply; a non-zero code is a RestError with its message."""
    if not isinstance(body, dict) or "code" not in body:
        return body
    if body.get("code") not in (0, None):
        message = body.get("message") or body.get("msg") or body.get("error")
        raise RestError(f"SoDEX answered code {body.get('code')}: {safe_text(message, 120)}")
    return body.get("data")
