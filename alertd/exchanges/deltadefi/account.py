"""A DeltaDeFi account in the config: its API key (a secret, carried in the stream URL)."""

from __future__ import annotations

from pathlib import Path

from alertd.common.errors import Problem
from alertd.common.expand import Expander
from alertd.common.redact import SecretURL, register_secret
from alertd.common.yamlsrc import LDict
from alertd.domain.account import Account

DEFAULT_URL = "wss://api.deltadefi.io/accounts/stream"


def parse_account(path: Path, item: LDict, name: str, url: str, expand: Expander,
                  problems: list[Problem]) -> Account:
    raw = item.get("api_key")
    key = expand(raw, item.line_of("api_key"))
    if not isinstance(key, str) or not key.strip():
        if not (isinstance(raw, str) and "${" in raw):  # a missing ${VAR} is reported already
            problems.append(Problem(path, item.line_of("api_key"), f"account '{name}': DeltaDeFi "
                                    "needs 'api_key' (write api_key: ${DELTADEFI_API_KEY})"))
        key = ""
    register_secret(key)
    return Account(name=name, exchange="deltadefi", url=url, api_key=key.strip())


def stream_url(account: Account) -> SecretURL:
    """The stream URL carries the key, so it is only ever held as a SecretURL."""
    sep = "&" if "?" in account.url else "?"
    return SecretURL(f"{account.url}{sep}api_key={account.api_key}")


def rest_base(account: Account) -> str:
    """The REST host: `rest_url`, or the stream's, its `stream.` host read as `api.` (as the
    SDKs configure it)."""
    base = account.rest_base()
    if account.rest_url is None and "://stream" in base:
        base = base.replace("://stream", "://api", 1)
    return base
