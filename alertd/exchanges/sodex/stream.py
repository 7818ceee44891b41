"""What SoDEX expects on a socket, without I/O: a subscription per account channel, every ack
checked, `{"op":"ping"}` when idle."""

from __future__ import annotations

import json
import logging
from typing import Any

from alertd.common.redact import SecretURL, safe_text
from alertd.domain.account import Account
from alertd.domain.observations import Source
from alertd.exchanges.common import SubscriptionRefused
from alertd.exchanges.sodex.account import stream_url

log = logging.getLogger("alertd.stream")

CHANNELS = {
    "spot": ("accountState", "accountUpdate", "accountOrderUpdate", "accountTrade"),
    "perps": ("accountState", "accountUpdate", "accountOrderUpdate", "accountTrade",
              "accountEvent"),
}


class SodexProtocol:
    """Subscribe to the account channels, check every ack, ping with {"op":"ping"} when idle."""

    app_ping = True

    def __init__(self, account: Account, market: str) -> None:
        self.account, self.market = account, market
        self.source = Source(account.name, "sodex", market)
        self.url: SecretURL = stream_url(account, market)
        self.channels = CHANNELS[market]
        self._pending: dict[int, str] = {}

    def opening(self) -> list[str]:
        """Subscribe requests for this connection; acks are expected for each id."""
        self._pending = {i: ch for i, ch in enumerate(self.channels, 1)}
        return [json.dumps({"op": "subscribe", "id": i,
                            "params": {"channel": ch, "user": self.account.user}})
                for i, ch in self._pending.items()]

    def control(self, frame: dict[str, Any]) -> bool:
        """Handle an ack, pong or error; False for a data frame."""
        op = frame.get("op")
        if op is None:
            return False
        if op in ("subscribe", "unsubscribe"):
            result = frame.get("result") if isinstance(frame.get("result"), dict) else {}
            channel = self._pending.get(frame.get("id")) if isinstance(frame.get("id"), int) \
                else result.get("channel")
            if frame.get("success") is not True:
                reason = safe_text(frame.get("error") or "no reason given")
                raise SubscriptionRefused(
                    f"SoDEX refused {channel or 'a subscription'} for account "
                    f"{self.account.name} ({self.market}): {reason}")
            for key, ch in list(self._pending.items()):
                if ch == channel or key == frame.get("id"):
                    del self._pending[key]
                    break
            return True
        if op == "error":  # as the SDKs do: say it and keep reading; only a refused ack refuses
            log.warning("%s/%s: SoDEX reported an error: %s", self.account.name, self.market,
                        safe_text(frame.get("error") or frame.get("code")))
        return True

    def ready(self) -> bool:
        return not self._pending

    def idle_message(self) -> str:
        return '{"op":"ping"}'

    def refused_reason(self, status: int) -> str:
        return f"SoDEX refused the connection for account {self.account.name} (HTTP {status})"
