"""SoDEX: one socket per account and market, a subscription per account channel (acks
checked), `accountState` as the snapshot; REST catch-up without auth, replies `{code, data}`."""

from __future__ import annotations

from typing import Any

from alertd.domain.account import Account
from alertd.domain.observations import Observation
from alertd.exchanges.sodex import account
from alertd.exchanges.sodex.normalise import normalise
from alertd.exchanges.sodex.rest import SodexCatchUp
from alertd.exchanges.sodex.schema import SCHEMAS
from alertd.exchanges.sodex.stream import SodexProtocol

PER_MARKET = ("accountUpdate", "accountState")
"""Channels whose shape differs between spot and perps: their schema key adds the market."""


class Sodex:
    name = "sodex"
    schemas = SCHEMAS
    default_url = account.DEFAULT_URL
    parse_account = staticmethod(account.parse_account)

    def describe_account(self, acc: Account) -> str:
        return f"{acc.name} (sodex {'+'.join(acc.markets)})"

    def protocols(self, account: Account) -> list[SodexProtocol]:
        return [SodexProtocol(account, market) for market in account.markets]

    def catch_up(self, account: Account, market: str) -> SodexCatchUp:
        return SodexCatchUp(account, market)

    def schema_key(self, frame: dict[str, Any], market: str) -> str | None:
        channel = frame.get("channel")
        if not isinstance(channel, str):
            return None
        return f"{channel}/{market}" if channel in PER_MARKET else channel

    def describe(self, frame: dict[str, Any]) -> str:
        return f"channel {frame.get('channel')!r}"

    def normalise(self, key: str, frame: dict[str, Any], market: str,
                  now: float) -> list[Observation]:
        return normalise(frame["channel"], frame, market, now)

    def snapshot(self, key: str, frame: dict[str, Any]) -> bool:
        return frame.get("type") == "snapshot" or frame.get("channel") == "accountState"


EXCHANGE = Sodex()
