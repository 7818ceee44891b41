"""A SoDEX account in the config: the owner address (public) and the markets to watch."""

from __future__ import annotations

import re
from pathlib import Path

from alertd.common.errors import Problem
from alertd.common.expand import Expander
from alertd.common.redact import SecretURL
from alertd.common.yamlsrc import LDict
from alertd.domain.account import Account

DEFAULT_URL = "wss://mainnet-gw.sodex.dev/ws"
MARKETS = ("spot", "perps")
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")


def parse_account(path: Path, item: LDict, name: str, url: str, expand: Expander,
                  problems: list[Problem]) -> Account:
    user = item.get("user")
    if not isinstance(user, str) or not _ADDRESS.match(user):
        problems.append(Problem(path, item.line_of("user"), f"account '{name}': SoDEX needs "
                                "'user', the owner address (0x followed by 40 hex digits, quoted)"))
        user = ""
    markets = item.get("markets", list(MARKETS))
    if (not isinstance(markets, list) or not markets
            or any(m not in MARKETS for m in markets) or len(set(markets)) != len(markets)):
        problems.append(Problem(path, item.line_of("markets"),
                                f"account '{name}': markets is a list of: spot, perps"))
        markets = list(MARKETS)
    return Account(name=name, exchange="sodex", url=url, user=user.lower(),
                   markets=tuple(markets))


def stream_url(account: Account, market: str) -> SecretURL:
    return SecretURL(f"{account.url.rstrip('/')}/{market}")
