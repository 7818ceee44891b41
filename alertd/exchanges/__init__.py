"""One package per exchange, behind one small interface (`Exchange`).

Each package holds everything that is that exchange's: what to send on a socket
(`stream.py`), the frames' schemas (`schema.py`), how frames become observations
(`normalise.py`) and how to catch up over REST (`rest.py`). The rest of alertd only asks
`EXCHANGES[name]`, so a third exchange is a new folder and one line below (its account keys
in the config, its URLs, schemas, normalising and REST are all in its folder).

Before every (re)connect a stream asks its exchange's catch-up for what the socket does not
replay: the balances as they are now and the orders and fills of the last day, as frames in the
stream's own shapes, so the same schemas, normalising and detection read them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol

from alertd.common.errors import Problem
from alertd.common.expand import Expander
from alertd.common.yamlsrc import LDict
from alertd.domain.account import Account
from alertd.domain.observations import Observation
from alertd.exchanges import deltadefi, sodex
from alertd.exchanges.common import WINDOW, CatchUp, SubscriptionRefused

__all__ = ["EXCHANGES", "WINDOW", "CatchUp", "Exchange", "StreamProtocol",
           "SubscriptionRefused", "catch_up_for", "protocols_for"]


class StreamProtocol(Protocol):
    """One socket's conversation, without I/O (the python-websockets idea): the stream loop
    asks what to send on connect and when idle, and hands it every frame first, so acks and
    pongs are handled here and only data frames reach the pipeline."""

    app_ping: bool
    pushes_while_idle: bool
    """The exchange promises data on this socket however quiet the account (a snapshot per
    block, say): a socket answering only pings for long is then silent, not idle."""
    account: Account
    source: Any
    url: Any

    def opening(self) -> list[str]: ...
    def control(self, frame: dict[str, Any]) -> bool: ...
    def ready(self) -> bool: ...
    def idle_message(self) -> str | None: ...
    def refused_reason(self, status: int) -> str: ...


class Exchange(Protocol):
    name: str
    default_url: str
    schemas: dict[str, dict[str, Any]]
    """JSON Schemas by the key `schema_key` gives a frame."""

    def parse_account(self, path: Path, item: LDict, name: str, url: str, expand: Expander,
                      problems: list[Problem]) -> Account:
        """The account's exchange-specific keys from the config; problems name their line."""
        ...

    def describe_account(self, account: Account) -> str: ...

    def protocols(self, account: Account) -> list[StreamProtocol]:
        """One per socket the account needs (SoDEX: one per market)."""
        ...

    def catch_up(self, account: Account, market: str) -> CatchUp: ...

    def schema_key(self, frame: dict[str, Any], market: str) -> str | None:
        """Which schema the frame must pass, or None for a type alertd does not read."""
        ...

    def describe(self, frame: dict[str, Any]) -> str:
        """The frame's type, for a drop's detail."""
        ...

    def normalise(self, key: str, frame: dict[str, Any], market: str,
                  now: float) -> list[Observation]: ...

    def snapshot(self, key: str, frame: dict[str, Any]) -> bool:
        """Whether the frame restates the whole account (a first one is history)."""
        ...


EXCHANGES: dict[str, Exchange] = {"deltadefi": deltadefi.EXCHANGE, "sodex": sodex.EXCHANGE}


def protocols_for(account: Account) -> list[StreamProtocol]:
    return EXCHANGES[account.exchange].protocols(account)


def catch_up_for(account: Account, market: str) -> CatchUp:
    return EXCHANGES[account.exchange].catch_up(account, market)
