"""DeltaDeFi: one socket per account (`/accounts/stream?api_key=…`), fills from the execution
records of `order_info`, REST catch-up with the `X-API-KEY` header."""

from __future__ import annotations

from typing import Any

from alertd.domain.account import Account
from alertd.domain.observations import Observation
from alertd.exchanges.deltadefi import account
from alertd.exchanges.deltadefi.normalise import normalise
from alertd.exchanges.deltadefi.rest import DeltaDefiCatchUp
from alertd.exchanges.deltadefi.schema import SCHEMAS
from alertd.exchanges.deltadefi.stream import DeltaDefiProtocol


class DeltaDefi:
    name = "deltadefi"
    schemas = SCHEMAS
    default_url = account.DEFAULT_URL
    parse_account = staticmethod(account.parse_account)

    def describe_account(self, acc: Account) -> str:
        return f"{acc.name} (deltadefi)"

    def protocols(self, account: Account) -> list[DeltaDefiProtocol]:
        return [DeltaDefiProtocol(account)]

    def catch_up(self, account: Account, market: str) -> DeltaDefiCatchUp:
        return DeltaDefiCatchUp(account)

    def schema_key(self, frame: dict[str, Any], market: str) -> str | None:
        sub = frame.get("sub_type")
        return sub if isinstance(sub, str) else None

    def describe(self, frame: dict[str, Any]) -> str:
        return f"sub_type {frame.get('sub_type')!r}"

    def normalise(self, key: str, frame: dict[str, Any], market: str,
                  now: float) -> list[Observation]:
        return normalise(key, frame, now)

    def snapshot(self, key: str, frame: dict[str, Any]) -> bool:
        return False


EXCHANGE = DeltaDefi()
