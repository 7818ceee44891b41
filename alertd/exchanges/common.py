"""What every exchange package shares: the catch-up contract and its bounds, and the error a
refused subscription raises."""

from __future__ import annotations

import time
from typing import Any, Protocol

from alertd.transport.http import Http, RestError

WINDOW = 24 * 3600.0
"""How far back a catch-up looks: a fill older than this is not announced after a gap."""
MAX_FILLS = 1000
DEADLINE = 30.0
"""A catch-up that takes longer than this gives up (and is tried again later)."""


class CatchUp(Protocol):
    def frames(self, http: Http, since: float) -> list[dict[str, Any]]:
        """Frames, oldest first, restating the account since `since` (epoch seconds).

        Raises RestError when it failed; PartialCatchUp when only some of its calls failed,
        carrying the frames the others fetched."""
        ...


class PartialCatchUp(RestError):
    """Some calls of a catch-up failed: `frames` is what the others fetched (a balance
    baseline, the trading pairs that answered), worth taking as it is; the catch-up still
    counts as failed, so it is reported and tried again."""

    def __init__(self, message: str, frames: list[dict[str, Any]]) -> None:
        super().__init__(message)
        self.frames = frames


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


class SubscriptionRefused(Exception):
    """The exchange refused a subscription; the reason is safe to show to the user."""
