"""One exchange account to watch, as the config names it and every stage refers to it."""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import urlsplit


@dataclass(frozen=True)
class Account:
    """One exchange account to watch; `api_key` only for DeltaDeFi, `user` only for SoDEX."""

    name: str
    exchange: str
    url: str
    api_key: str | None = field(default=None, repr=False)
    user: str | None = None
    markets: tuple[str, ...] = ("spot",)
    rest_url: str | None = None

    def rest_base(self) -> str:
        """Where the REST API is: `rest_url`, or the stream's host over http(s) (an exchange
        package may adjust the host, as DeltaDeFi's `stream.` → `api.`)."""
        if self.rest_url:
            return self.rest_url.rstrip("/")
        parts = urlsplit(self.url)
        return f"{'https' if parts.scheme == 'wss' else 'http'}://{parts.netloc}"
