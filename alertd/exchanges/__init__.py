"""One package per exchange: what it takes to catch up with an account over REST.

Before every (re)connect a stream asks its exchange's `CatchUp` for what the socket does not
replay: the balances as they are now and the orders and fills of the last day. The answer is
a list of frames in the stream's own shapes, so the same schemas, normalising and detection
read them; fills already seen are not announced again, missed ones are, marked `caught_up`.
"""

from __future__ import annotations

import time
from typing import Any, Protocol

from alertd.config import Account
from alertd.http import Http, RestError

WINDOW = 24 * 3600.0
"""How far back a catch-up looks: a fill older than this is not announced after a gap."""
MAX_FILLS = 1000
DEADLINE = 30.0
"""A catch-up that takes longer than this gives up (and is tried again later)."""


class CatchUp(Protocol):
    def frames(self, http: Http, since: float) -> list[dict[str, Any]]:
        """Frames, oldest first, restating the account since `since` (epoch seconds)."""
        ...


class Budget:
    """Bounds one catch-up in time, so a slow REST API cannot hold a stream for long."""

    def __init__(self, seconds: float = DEADLINE) -> None:
        self.until = time.monotonic() + seconds

    def check(self) -> None:
        if time.monotonic() > self.until:
            raise RestError(f"catch-up took longer than {DEADLINE:.0f} s")


def items(body: Any, *keys: str) -> list[Any]:
    """The list in a reply: the body itself, or under one of `keys`; `null` is empty."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in keys:
            value = body.get(key)
            if isinstance(value, list):
                return value
    return []


def catch_up_for(account: Account, market: str) -> CatchUp:
    from alertd.exchanges import deltadefi, sodex

    if account.exchange == "deltadefi":
        return deltadefi.DeltaDefiCatchUp(account)
    return sodex.SodexCatchUp(account, market)
