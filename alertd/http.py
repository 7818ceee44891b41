"""The HTTP client adapter (requests): the only module that imports it.

REST replies are bounded in size and time, parsed straight to Decimal, and every error is
turned into a `RestError` whose text names no URL query and no key.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import requests

from alertd.redact import redact_url, safe_text

MAX_REPLY = 8 << 20
_decoder = json.JSONDecoder(parse_float=Decimal)


class RestError(Exception):
    """A REST call failed; the message is safe to log and to put in an alert."""


class Http:
    """One keep-alive session per account; `get` returns the parsed JSON body."""

    def __init__(self, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._session = requests.Session()

    def get(self, url: str, params: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> Any:
        where = redact_url(url)
        try:
            with self._session.get(url, params=params, headers=headers, timeout=self.timeout,
                                   stream=True) as reply:
                body = reply.raw.read(MAX_REPLY + 1, decode_content=True)
                status = reply.status_code
        except requests.RequestException as exc:
            raise RestError(f"GET {where}: {type(exc).__name__}") from None
        if len(body) > MAX_REPLY:
            raise RestError(f"GET {where}: reply larger than {MAX_REPLY >> 20} MiB")
        if status >= 400:
            raise RestError(f"GET {where}: HTTP {status} "
                            f"{safe_text(body[:200].decode('utf-8', 'replace'), 120)}")
        try:
            return _decoder.decode(body.decode("utf-8"))
        except (ValueError, RecursionError):
            raise RestError(f"GET {where}: the reply is not JSON") from None

    def close(self) -> None:
        self._session.close()
