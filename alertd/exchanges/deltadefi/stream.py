"""What DeltaDeFi expects on a socket, without I/O: nothing to send on connect (the key in the
URL subscribes to everything), keep-alive by WebSocket ping frames."""

from __future__ import annotations

from typing import Any

from alertd.common.redact import SecretURL
from alertd.domain.account import Account
from alertd.domain.observations import Source
from alertd.exchanges.deltadefi.account import stream_url


class DeltaDefiProtocol:
    """Connecting subscribes to everything; keep-alive is by WebSocket ping frames."""

    app_ping = False
    pushes_while_idle = False
    """Every account stream message is sent on a change (account-streams.md: balance "when
    deposits, withdrawals, or trades occur", order_info "whenever an order status
    changes"); nothing is promised while the account is quiet."""

    def __init__(self, account: Account) -> None:
        self.account = account
        self.source = Source(account.name, "deltadefi", "spot")
        self.url: SecretURL = stream_url(account)

    def opening(self) -> list[str]:
        return []

    def control(self, frame: dict[str, Any]) -> bool:
        return False

    def ready(self) -> bool:
        return True

    def idle_message(self) -> str | None:
        return None

    def refused_reason(self, status: int) -> str:
        return f"DeltaDeFi refused the API key for account {self.account.name} (HTTP {status})"
