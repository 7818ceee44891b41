"""What SoDEX expects on a socket, without I/O: a subscription per account channel, every ack
checked, `{"op":"ping"}` when idle.

Acks are read as the official SDKs read them (`contracts/sodex/ws-subscribe.json`):
sodex-ts-sdk `src/ws/transport.ts` fails a subscription only on `success === false` and keeps
the socket and its other subscriptions; sodex-go-sdk-public `ws/client.go` likewise reports
only `Success != nil && !*Success`. So an ack without `success` is an ack, and a refused channel
is tried again alone, with backoff, while the others flow."""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Callable
from typing import Any

from alertd.common.redact import SecretURL, safe_text
from alertd.domain.account import Account
from alertd.domain.observations import Source
from alertd.exchanges.sodex.account import stream_url

log = logging.getLogger("alertd.stream")

CHANNELS = {
    "spot": ("accountState", "accountUpdate", "accountOrderUpdate", "accountTrade"),
    "perps": ("accountState", "accountUpdate", "accountOrderUpdate", "accountTrade",
              "accountEvent"),
}
MAX_DOUBLINGS = 30
"""A refused channel's backoff stops doubling here (a float times 2**1024 overflows)."""


class SodexProtocol:
    """Subscribe to the account channels, check every ack, ping with {"op":"ping"} when idle;
    a channel the exchange refuses is retried alone (`due`), and said once (`take_reports`)."""

    app_ping = True
    pushes_while_idle = True
    """`accountState` is "pushed on each block that is at least 0.5 seconds since the last
    push" (SoDEX's API docs, websocket-v1 account-frontend-state.md; the TS SDK,
    sodex-tech/sodex-ts-sdk@67c5527874b7 src/ws/types.ts, throttles it to 500/1000/3000 ms),
    and the server drops a socket that was pushed nothing for 60 s (websocket-v1.md;
    sodex-tech/sodex-go-sdk-public@682466a26ba4 references/websocket.md: "Connection drops
    after 60s of silence"). The other account channels push only when something happens."""

    def __init__(self, account: Account, market: str, *,
                 rng: Callable[[], float] = random.random) -> None:
        self.account, self.market = account, market
        self.source = Source(account.name, "sodex", market)
        self.url: SecretURL = stream_url(account, market)
        self.channels = CHANNELS[market]
        self._rng = rng
        self._next_id = 0
        self._pending: dict[int, str] = {}
        """Subscribe requests not answered yet, by id."""
        self._refused: dict[str, int] = {}
        """Channels refused on this connection, with how often in a row."""
        self._retry_at: dict[str, float | None] = {}
        """When each refused channel is tried again (None: its wait starts at the next
        `due`, which the stream loop calls every turn)."""
        self._wait: dict[str, float] = {}
        self._backoff = (1.0, 60.0)
        """The stream's first and longest backoff, as `due` was last given them."""
        self._said_refused: set[str] = set()
        self._reports: list[tuple[str, str]] = []

    def opening(self) -> list[str]:
        """Subscribe requests for this connection; acks are expected for each id."""
        self._pending.clear()
        self._refused.clear()
        self._retry_at.clear()
        return [self._subscribe(ch) for ch in self.channels]

    def _subscribe(self, channel: str) -> str:
        self._next_id += 1
        self._pending[self._next_id] = channel
        return json.dumps({"op": "subscribe", "id": self._next_id,
                           "params": {"channel": channel, "user": self.account.user}})

    def control(self, frame: dict[str, Any]) -> bool:
        """Handle an ack, pong or error; False for a data frame."""
        op = frame.get("op")
        if op is None:
            return False
        if op in ("subscribe", "unsubscribe"):
            self._ack(frame)
        elif op == "error":  # as the SDKs do: say it and keep reading
            log.warning("%s/%s: SoDEX reported an error: %s", self.account.name, self.market,
                        safe_text(frame.get("error") or frame.get("code")))
        return True

    def _ack(self, frame: dict[str, Any]) -> None:
        ident = frame.get("id")
        result = frame.get("result") if isinstance(frame.get("result"), dict) else {}
        channel = self._pending.pop(ident, None) if isinstance(ident, int) else None
        if channel is None:
            named = result.get("channel")
            found = next((k for k, ch in self._pending.items() if ch == named), None)
            channel = self._pending.pop(found) if found is not None else None
        if channel is None or frame.get("op") != "subscribe":
            return
        if frame.get("success") is False:
            self._refuse(channel, frame.get("error"))
        elif channel in self._refused or channel in self._said_refused:
            self._refused.pop(channel, None)
            self._retry_at.pop(channel, None)
            if channel in self._said_refused:
                self._said_refused.discard(channel)
                self._reports.append(("connected", f"SoDEX accepted {channel} for account "
                                      f"{self.account.name} ({self.market})"))
                log.info("%s/%s: SoDEX accepted %s", self.account.name, self.market, channel)

    def _refuse(self, channel: str, error: Any) -> None:
        times = self._refused.get(channel, 0) + 1
        self._refused[channel] = times
        first, maximum = self._backoff
        delay = min(maximum, first * 2 ** min(times - 1, MAX_DOUBLINGS))
        self._wait[channel] = delay * (0.5 + self._rng())
        self._retry_at[channel] = None
        reason = (f"SoDEX refused {channel} for account {self.account.name} ({self.market}): "
                  f"{safe_text(error or 'no reason given')}; retrying that channel alone")
        if channel not in self._said_refused:
            self._said_refused.add(channel)
            self._reports.append(("rejected", reason))
        log.warning("%s/%s: %s", self.account.name, self.market, reason)

    def due(self, now: float, first: float, maximum: float) -> list[str]:
        """Subscribe requests to send now: each refused channel again once its backoff is
        over (`first` doubling to `maximum` per refusal in a row, ±50 % jitter); a retry left
        unanswered for `maximum` is sent again."""
        self._backoff = (first, maximum)
        out: list[str] = []
        for channel in list(self._refused):
            at = self._retry_at.get(channel)
            if at is None:
                self._retry_at[channel] = at = now + self._wait.get(channel, first)
            if now < at:
                continue
            for ident in [k for k, ch in self._pending.items() if ch == channel]:
                del self._pending[ident]
            self._retry_at[channel] = now + maximum
            out.append(self._subscribe(channel))
        return out

    def take_reports(self) -> list[tuple[str, str]]:
        """The `stream` events (status, reason) decided since the last call: one `rejected`
        naming a refused channel, one `connected` when it is taken again."""
        reports, self._reports = self._reports, []
        return reports

    def ready(self) -> bool:
        """Every subscription answered (a refused one too: the others flow)."""
        return not self._pending

    def idle_message(self) -> str:
        return '{"op":"ping"}'

    def refused_reason(self, status: int) -> str:
        return f"SoDEX refused the connection for account {self.account.name} (HTTP {status})"
