"""DeltaDeFi's asset units as people read them: a fee's `commission_unit` is an on-chain unit
("lovelace", or policy id + asset name in hex), which a trader knows as ADA or USDM.

Units come from the published asset list and, at run time, from `/app/market-config`
(`MarketConfigAsset.unit`, "Asset unit/policy ID (e.g., lovelace)"; deltadefi-docs@a738331
app/market-config.md and assets.md, transcribed in contracts/deltadefi/get-app-market-config.json).
The docs write the same unit with a dot between policy id and name in one place and without
in another, so units are compared without it.

Amounts: the API says "quantities are returned in human-readable format adjusted for token
decimals" (the OpenAPI of /accounts/trade-orders, contracts/deltadefi/published/), which the
exchange's own bots' logs bear out for USDM, IAG and NIGHT fees; a fee in `lovelace` is the
exception its Hummingbot connector makes (deltadefi-protocol/hummingbot@0f72dbf
deltadefi_exchange.py, from commit 6ee0d1a "Normalize Cardano lovelace to ADA (1 ADA =
1,000,000 lovelace)"), and alertd follows the exchange's own code there.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

LOVELACE_PER_ADA = Decimal(1_000_000)
MAX_UNITS = 1_000
"""Units learnt from market-config at most: the reply is outside text."""

_SYMBOLS: dict[str, str] = {
    "lovelace": "ADA",
    "c48cbb3d5e57ed56e276bc45f99ab39abe94e6cd7ac39fb402da47ad0014df105553444d": "USDM",
    "0691b2fecca1ac4f53cb6dfb00b7013e561d1f34403b957cbb5af1fa4e49474854": "NIGHT",
}
"""Mainnet units from the docs' assets.md; market-config adds the others (preprod, new)."""


def _key(unit: str) -> str:
    return unit.replace(".", "").lower()


def learn(market_config: Any) -> None:
    """Take the unit → symbol pairs of a market-config reply (assets and both tokens of each
    pair); anything malformed is skipped, since the reply's schema was checked already."""
    if not isinstance(market_config, dict):
        return
    tokens = list(market_config.get("assets") or ())
    for pair in market_config.get("trading_pairs") or ():
        if isinstance(pair, dict):
            tokens += [pair.get("base_token"), pair.get("quote_token")]
    for token in tokens:
        if len(_SYMBOLS) >= MAX_UNITS:
            return
        if isinstance(token, dict) and isinstance(token.get("unit"), str) \
                and isinstance(token.get("symbol"), str) and 0 < len(token["symbol"]) <= 20:
            _SYMBOLS[_key(token["unit"])] = token["symbol"]


def symbol(unit: str | None) -> str | None:
    """The asset's symbol for a unit; a unit not known is kept as sent (a symbol already, or
    a unit market-config has not listed)."""
    if not unit:
        return None
    return _SYMBOLS.get(_key(unit), unit)


def fee(amount: Decimal | None, unit: str | None) -> tuple[Decimal | None, str | None]:
    """A commission in the asset's own unit (ADA, not lovelace) with its symbol."""
    if amount is not None and unit is not None and unit.lower() == "lovelace":
        amount = amount / LOVELACE_PER_ADA
    return amount, symbol(unit)
