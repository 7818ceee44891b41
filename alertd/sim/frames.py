"""Frames as the exchanges document them, stamped with the time they are given.

The demo stamps them with the wall clock it runs on; a test on a fake clock passes its
clock's time as `at`, so what it checks never depends on the hour it runs at.
"""

from __future__ import annotations

import json
import time
from decimal import Decimal
from typing import Any

from alertd.domain.observations import iso


def _at(at: float | None) -> float:
    return time.time() if at is None else at


def dd_order(order_id: str, status: str, records: list[tuple[str, str]], executed: str,
             qty: str = "2000", price: str = "0.93", *, at: float | None = None,
             symbol: str = "ADAUSDM", side: str = "buy") -> dict[str, Any]:
    """A DeltaDeFi order_info frame as the exchange documents it, its records stamped `at`."""
    now = _at(at)
    recs = [{"id": rid, "order_id": order_id, "execution_price": price, "filled_base_qty": q,
             "filled_quote_qty": str(Decimal(q) * Decimal(price)), "commission": "0.1",
             "commission_unit": "ada", "role": "taker", "created_at": iso(None, now + i / 1000)}
            for i, (rid, q) in enumerate(records)]
    return {"type": "Account", "sub_type": "order_info", "order": {
        "id": order_id, "account_id": "acc-1", "status": status, "symbol": symbol,
        "base_qty": qty, "quote_qty": str(Decimal(qty) * Decimal(price)), "side": side,
        "price": price, "type": "limit", "locked_base_qty": qty, "executed_base_qty": executed,
        "executed_quote_qty": "0", "executed_price": price, "commission_unit": "ada",
        "commission": "0", "commission_rate_bp": 10, "created_at": iso(None, now - 120),
        "updated_at": iso(None, now), "order_execution_records": recs}}


def dd_balance(ada: str, usdm: str = "1153.006812") -> str:
    """Balances arrive as JSON numbers on this stream; kept as text to stay exact."""
    return ('{"type":"Account","sub_type":"balance","balance":['
            f'{{"asset":"usdm","asset_unit":"5066","free":{usdm},"locked":0}},'
            f'{{"asset":"ada","asset_unit":"","free":{ada},"locked":0}}]}}')


def dd_balances(rows: list[tuple[str, str, str, str]]) -> str:
    """A balance frame listing each (asset, unit, free, locked), the amounts as JSON numbers
    written as given, so that they stay exact."""
    items = ",".join(f'{{"asset":{json.dumps(a)},"asset_unit":{json.dumps(u)},'
                     f'"free":{free},"locked":{locked}}}' for a, u, free, locked in rows)
    return f'{{"type":"Account","sub_type":"balance","balance":[{items}]}}'


def dd_points(total: str, league: str, delta: str = "150", *,
              season: str = "5150") -> dict[str, Any]:
    return {"type": "Account", "sub_type": "dlta_points", "dlta_points": {
        "delta": delta, "new_total": total, "season_points": season, "source_type": "trade",
        "source_ref": "o-1", "league": league}}


SX_EXEC = {"NEW": "NEW", "PARTIALLY_FILLED": "PARTIALLY_FILLED", "FILLED": "FILLED",
           "CANCELED": "CANCELED", "REJECTED": "REJECTED", "EXPIRED": "EXPIRED"}
"""The exec type (`x`) an order update carries with each status (TS `common/enums.ts`)."""


def _ms(at: float | None) -> int:
    return int(_at(at) * 1000)


def sx_order(status: str, filled: str, *, at: float | None = None, symbol: str = "vBTC_vUSDC",
             side: str = "BUY", price: str = "60000", qty: str = "0.5", order_id: int = 7001,
             client_id: str = "c-1", perps: bool = False) -> dict[str, Any]:
    """A spot accountOrderUpdate record with every field the TS SDK's parser requires
    (sodex-ts-sdk `src/ws/parsers/order-update.ts`: E T s c i S o f p q X z v M x); `perps`
    adds the two a perps one also requires (ps, the position side, and R, reduce-only)."""
    ms = _ms(at)
    record: dict[str, Any] = {
        "E": ms, "T": ms, "s": symbol, "c": client_id, "i": order_id, "S": side, "o": "LIMIT",
        "f": "GTC", "p": price, "q": qty, "X": status, "z": filled,
        "v": str(Decimal(filled) * Decimal(price)), "M": "0", "x": SX_EXEC.get(status, "NEW")}
    if perps:
        record.update(ps="BOTH", R=False)
    return record


def sx_trade(trade_id: int, qty: str, *, at: float | None = None, symbol: str = "vBTC_vUSDC",
             side: str = "BUY", price: str = "60000", order_id: int = 7001,
             client_id: str = "c-1", fee: str = "0.6") -> dict[str, Any]:
    """An accountTrade record (`account-trade.ts`: E T t s i c S p q f m, all required)."""
    ms = _ms(at)
    return {"E": ms, "T": ms, "t": trade_id, "s": symbol, "i": order_id,
            "c": client_id, "S": side, "p": price, "q": qty, "f": fee, "m": False}


def sx_balances(usdc_total: str, usdc_locked: str = "0", *, at: float | None = None
                ) -> dict[str, Any]:
    """A spot accountUpdate (`account-update.ts`: E T h, B [{i a t l}])."""
    return sx_spot_update([("vUSDC", usdc_total, usdc_locked), ("vBTC", "0.5", "0")], at=at)


def sx_spot_update(balances: list[tuple[str, str, str]], *, at: float | None = None
                   ) -> dict[str, Any]:
    """A spot accountUpdate listing each (asset, total, locked), numbered in order."""
    ms = _ms(at)
    return {"E": ms, "T": ms, "h": 2211, "B": [{"i": i, "a": a, "t": total, "l": locked}
                                               for i, (a, total, locked) in enumerate(balances)]}


def sx_position(symbol: str, size: str, entry: str, *, side: str = "BOTH",
                iw: str | None = None, pid: int | None = None) -> dict[str, Any]:
    """A position as a perps accountUpdate lists it (`account-update.ts`: i s sz ep ps, iw
    the isolated margin, null for cross)."""
    return {"i": pid if pid is not None else 100 + len(symbol), "s": symbol, "sz": size,
            "ep": entry, "ps": side, "iw": iw}


def sx_perps_update(positions: list[dict[str, Any]], wallet: str = "10000", *,
                    at: float | None = None) -> dict[str, Any]:
    """A perps accountUpdate: the wallet balance and the positions that changed."""
    ms = _ms(at)
    return {"E": ms, "T": ms, "h": 2212, "B": [{"i": 0, "a": "vUSDC", "wb": wallet}],
            "P": positions}


def sx_state_position(symbol: str, size: str, entry: str, *, side: str = "BOTH",
                      mode: str | int = "CROSS", iw: str | None = None, lp: str = "0",
                      ur: str = "0", leverage: int = 10) -> dict[str, Any]:
    """A position as perps accountState lists it (`perps/client.ts`
    parsePerpsSnapshotPosition: i s m ps sz ep co cf cc cp ms cr ur l lp required, iw
    nullable)."""
    return {"i": 100 + len(symbol), "s": symbol, "m": mode, "ps": side, "sz": size,
            "ep": entry, "co": str(abs(Decimal(size)) * Decimal(entry)), "cf": "0",
            "cc": "0", "cp": "0", "ms": size.lstrip("-"), "cr": "0", "ur": ur, "l": leverage,
            "lp": lp, "iw": iw}


def sx_perps_state(positions: list[dict[str, Any]], *, av: str = "1000", am: str = "1000",
                   wallet: str = "1000", at: float | None = None,
                   user: str = "0xed3e79ef16a7890e6eaef2aa6373b6bec5d59d5c") -> dict[str, Any]:
    """A perps accountState with every field `parsePerpsAccountSnapshot` requires: the
    account value (av), the margin available to cross positions (am), the frozen margins,
    the wallet balance and the positions (a complete list)."""
    del at  # accountState carries no event time (the REST /state shape)
    used = str(Decimal(av) - Decimal(am))
    return {"user": user, "aid": 1001, "uid": 1001,
            "av": av, "am": am, "ami": "0", "amw": am, "im": "0", "cm": used, "oim": "0",
            "ocm": "0", "B": [{"i": 0, "a": "vUSDC", "wb": wallet, "mr": "1", "px": "1",
                               "aw": am, "at": am, "wm": wallet, "am": am, "iw": None}],
            "O": None, "P": positions, "S": None}


def sx_liquidation(symbol: str, size: str, mark: str, liquidation: str | None, *,
                   side: str = "BOTH", mode: str = "CROSS", av: str = "1000",
                   at: float | None = None, lid: int = 1) -> dict[str, Any]:
    """An accountEvent liquidation (`liquidation.ts`: type E lid aid av mm, B [{i a wb}],
    P [{s ps sz mp lp}])."""
    return {"type": "liquidation", "E": _ms(at), "lid": lid, "aid": 1001, "av": av, "mm": mode,
            "B": [{"i": 0, "a": "vUSDC", "wb": av}],
            "P": [{"s": symbol, "ps": side, "sz": size, "mp": mark, "lp": liquidation}]}


def sx(channel: str, data: Any, kind: str = "update") -> str:
    """A SoDEX push on `channel`, as text."""
    return json.dumps({"channel": channel, "type": kind, "data": data})
