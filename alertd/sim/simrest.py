"""The simulated exchange's REST side: the account as the pushed frames left it.

Every frame the simulator pushes (or is told happened while nobody listened) updates this
record, and the REST endpoints of both exchanges answer from it in their documented shapes,
so catch-up is exercised end to end on 127.0.0.1.

DeltaDeFi's side is held to `contracts/deltadefi/`: a request off the contract (unknown path,
missing or ill-formed parameter, unknown trading pair, missing or bad X-API-KEY) gets the
exchange's own error answer and is listed in `contract_violations`, and every reply is checked
against the contract's reply schema, so a client written from a misreading fails here first.
Lists are paged as published and come oldest first, an order the contract does not promise.

SoDEX's side is held to `contracts/sodex/` the same way: a request off it (unknown path or
engine, a method other than GET, an address that is no 0x address, an unknown, repeated or
ill-typed parameter, a limit above 1000, a window ending before it starts) gets an error
envelope and a violation; every reply, and every frame the simulator sends (`check_sodex_frame`),
is checked against the contract's schemas. History comes oldest first, at most `limit` rows
(100 when a request names none: no SDK publishes the default), so a client must page.
"""

from __future__ import annotations

import copy
import json
import re
import threading
import time
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import jsonschema_rs

DD_PREFIXES = ("/accounts/", "/account/", "/app/")
DD_STATUS = {"partially_filled": "open", "fully_filled": "closed",
             "partially_cancelled": "cancelled"}
"""Older stream statuses as the REST contract's enum has them (building ... cancelled)."""
DD_OPEN = frozenset({"building", "processing", "open"})
MAX_KEPT = 5000
"""Replies and violations kept for a test to read; the demo runs long, memory must not grow."""

INVALID = 400, {"code": 4000, "error": "Invalid request data"}
UNAUTHORIZED = 401, {"code": 4010, "error": "Unauthorized access"}
BAD_SYMBOL = 400, {"code": 4106, "error": "Invalid trading pair symbol"}
NOT_FOUND = 400, {"code": 4200, "error": "Order not found"}
UNAVAILABLE = 500, {"code": 5001, "error": "System resources temporaily unavailable"}
"""The docs' status-code table (its spelling); the HTTP status of each code is not stated."""
NO_ROUTE = 404, {"code": 404, "error": "Not Found"}

SX_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
SX_DEFAULT_LIMIT = 100
SX_MODES = {1: "ISOLATED", 2: "CROSS"}

NIGHT_UNIT = "0691b2fecca1ac4f53cb6dfb00b7013e561d1f34403b957cbb5af1fa4e49474854"
"""NIGHT's mainnet unit (docs, assets.md); its decimals are not published, 6 is assumed."""


def contracts_dir() -> Path:
    """The API contracts: packaged with the wheel, or the repository's contracts/ folder."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "contracts", package.parent / "contracts"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("the API contracts (contracts/) were not found")


def load_contracts(exchange: str = "deltadefi") -> dict[str, dict[str, Any]]:
    """The exchange's contract files by operation name."""
    return {c["operation"]: c for c in (
        json.loads(p.read_text(encoding="utf-8"))
        for p in sorted((contracts_dir() / exchange).glob("*.json")))}


def market_config(example: dict[str, Any]) -> dict[str, Any]:
    """The docs' example (ADA, USDM, ADAUSDM) plus NIGHT and NIGHTUSDM, the docs' second pair,
    so that a client reading one pair only misses something."""
    config = copy.deepcopy(example)
    usdm = next(a for a in config["assets"] if a["symbol"] == "USDM")
    usdm["trading_pairs"].append("NIGHTUSDM")
    night = {"symbol": "NIGHT", "unit": NIGHT_UNIT, "decimals": 6, "max_qty_dp": 2}
    config["assets"].append({**night, "trading_pairs": ["NIGHTUSDM"]})
    quote = {k: usdm[k] for k in ("symbol", "unit", "decimals", "max_qty_dp")}
    config["trading_pairs"].append({"symbol": "NIGHTUSDM", "base_token": night,
                                    "quote_token": quote, "price_max_dp": 4})
    return config


@dataclass(frozen=True)
class _Route:
    """One published path of an operation, and its parameters."""

    contract: dict[str, Any]
    template: str
    pattern: re.Pattern[str]
    parameters: tuple[dict[str, Any], ...]


def _routes(contracts: dict[str, dict[str, Any]]) -> list[_Route]:
    """Every published path of every operation, `{id}` segments as named groups."""
    routes = []
    for contract in contracts.values():
        for variant in [contract, *contract.get("variants", ())]:
            template = variant["path"]
            pattern = "^" + re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]+)", re.escape(template)) + "$"
            routes.append(_Route(contract, template, re.compile(pattern),
                                 tuple(variant.get("parameters", ()))))
    return routes


class SimRest:
    """Answers `GET` paths of both REST APIs: (status, JSON text), or None if not REST."""

    def __init__(self, valid_keys: set[str] | None) -> None:
        self.valid_keys = valid_keys
        self.failing = False
        self.requests: list[str] = []
        self.contracts = load_contracts("deltadefi")
        self.market_config = market_config(self.contracts["get-app-market-config"]["example"])
        self.contract_violations: list[str] = []
        """DeltaDeFi requests (and replies) off the contract, each as `GET path: why`."""
        self.replies: list[tuple[str, int, Any, bool]] = []
        """DeltaDeFi replies as (operation, status, body, faulted)."""
        self.balance_as_text = False
        """Serve balances as the SDKs type them (strings) instead of the docs' numbers."""
        self.records_in_lists = True
        """False: the order lists leave the execution records out (an order is then asked for
        by id), as the README allows a server to."""
        self.missing_paths: set[str] = set()
        """Published paths this server lacks (answered 404, not a violation): a variant test."""
        self.faults: dict[tuple[str, str | None], tuple[int, str]] = {}
        self._routes = _routes(self.contracts)
        self._check = {(name, kind): [jsonschema_rs.validator_for(s) for s in (
            [c[kind]["schema"]] + [v["schema"] for v in c.get("reply_variants", ())
                                   if kind == "reply"])]
            for name, c in self.contracts.items() for kind in ("reply", "errors")}
        """Per operation, the validators a reply may pass: the published schema, or another
        published variant of it (the SDKs' types)."""
        self._lock = threading.Lock()
        self._dd_balance: dict[str, list[dict[str, Any]]] = {}
        self._dd_orders: dict[str, dict[str, dict[str, Any]]] = {}
        self._sx_balances: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._sx_positions: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self._sx_orders: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        self._sx_trades: dict[tuple[str, str], dict[tuple[str, str], dict[str, Any]]] = {}
        self.sodex_contracts = load_contracts("sodex")
        self.sodex_replies: list[tuple[str, str, int, Any]] = []
        """SoDEX replies as (operation, market, status, body)."""
        self.sodex_positions_shape = "docs"
        """How /positions answers: `docs` (TS/docs `{positions: [...]}`), `go` (Go's and the
        older python SDK's `{orders: [...]}`) or `python` (the newer python SDK's)."""
        self.sodex_page_size = 1000
        """The most rows a history page holds (the SDKs' published cap)."""
        self._sx_ops = {c["path"].rsplit("/accounts/{address}/", 1)[1]: c
                        for c in self.sodex_contracts.values() if c["kind"] == "rest"}
        self._sx_replies = {(name, m): [jsonschema_rs.validator_for(s) for s in (
            [c["reply"]["schemas"][m]] + [v["schema"] for v in c["reply_variants"]
                                           if m in v["markets"]])]
            for name, c in self.sodex_contracts.items() if c["kind"] == "rest"
            for m in c["markets"]}
        self._sx_error = jsonschema_rs.validator_for(_error_schema(self.sodex_contracts))
        self._sx_frames = {(c["channel"], m): jsonschema_rs.validator_for(schema)
                           for c in self.sodex_contracts.values() if c["kind"] == "stream"
                           for m, schema in c["frame"]["schemas"].items()}
        control = self.sodex_contracts["ws-subscribe"]
        self._sx_control = {op: jsonschema_rs.validator_for(control[kind]) for op, kind in (
            ("subscribe", "ack"), ("unsubscribe", "ack"), ("pong", "pong"), ("error", "error"))}

    def fault(self, path: str, symbol: str | None = None, status: int = 500,
              body: Any = None) -> None:
        """Make DeltaDeFi answer `path` (for one `symbol`, or all) with this, as a broken
        exchange would; `body` defaults to the docs' internal server error."""
        text = json.dumps({"code": 5000, "error": "Internal Server Error"} if body is None
                          else body)
        self.faults[(path, symbol)] = (status, text)

    @property
    def trading_pairs(self) -> list[str]:
        """The symbols it serves, from its market config: a request for another is refused."""
        return [p["symbol"] for p in self.market_config["trading_pairs"]]

    # --- what happened on the account -------------------------------------------------------

    def deltadefi(self, api_key: str, frame: Any) -> None:
        frame = _parsed(frame)
        with self._lock:
            if frame.get("sub_type") == "balance":
                self._dd_balance[api_key] = [b for b in frame.get("balance") or ()
                                             if isinstance(b, dict)]
            elif frame.get("sub_type") == "order_info" and isinstance(frame.get("order"), dict):
                order = frame["order"]
                self._dd_orders.setdefault(api_key, {})[str(order.get("id"))] = order

    def sodex(self, user: str, market: str, channel: str, data: Any) -> None:
        """Make a push happen on the account: an accountState restates its balances and
        positions whole, an accountUpdate changes the ones it lists."""
        key = (user.lower(), market)
        rows = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
        with self._lock:
            for row in rows:
                if channel in ("accountUpdate", "accountState"):
                    whole = channel == "accountState"
                    if whole and "B" in row:
                        self._sx_balances[key] = {}
                    if whole and "P" in row:
                        self._sx_positions[key] = {}
                    for b in row.get("B") or ():
                        self._sx_balances.setdefault(key, {})[str(b.get("a"))] = b
                    for p in row.get("P") or ():
                        self._sx_positions.setdefault(key, {})[
                            (str(p.get("s")), str(p.get("ps") or "BOTH"))] = p
                elif channel == "accountOrderUpdate":
                    self._sx_orders.setdefault(key, {})[str(row.get("i"))] = row
                elif channel == "accountTrade":
                    trade = (str(row.get("s")), str(row.get("t")))
                    self._sx_trades.setdefault(key, {})[trade] = row

    def check_sodex_frame(self, market: str, frame: Any) -> None:
        """Hold a frame the simulator sends on a SoDEX socket to the contracts: a push to its
        channel's schema, an ack or pong to `ws-subscribe.json`; off it, a violation."""
        if not isinstance(frame, dict):
            self._violation(f"frame on {market}: not a JSON object")
            return
        if "op" in frame:
            validator = self._sx_control.get(str(frame.get("op")))
            what = f"control {frame.get('op')!r}"
        else:
            validator = self._sx_frames.get((str(frame.get("channel")), market))
            what = f"frame {frame.get('channel')} ({market})"
        if validator is None:
            self._violation(f"{what}: no such frame in contracts/sodex")
        elif not validator.is_valid(frame):
            error = next(iter(validator.iter_errors(frame)), None)
            self._violation(f"{what}: {getattr(error, 'message', error)}"[:300])

    # --- the endpoints --------------------------------------------------------------------------

    def answer(self, path: str, headers: Any, method: str = "GET") -> tuple[int, str] | None:
        """The reply to a REST request; it is listed in `requests` once its reply is made."""
        reply = self._answer(path, headers, method)
        if reply is not None:
            self.requests.append(urlsplit(path).path)
        return reply

    def _answer(self, path: str, headers: Any, method: str) -> tuple[int, str] | None:
        parts = urlsplit(path)
        if parts.path.startswith("/api/v1/"):
            return self._sodex_request(method, parts.path, parts.query)
        if parts.path.startswith(DD_PREFIXES) and parts.path != "/accounts/stream":
            return self._deltadefi_request(parts.path, parts.query, headers)
        return None

    # --- DeltaDeFi, held to its contract ----------------------------------------------------

    def _deltadefi_request(self, path: str, query_text: str, headers: Any) -> tuple[int, str]:
        """Check the request against the contract, then answer it (and check the answer)."""
        where = f"GET {path}"
        route, found = self._route(path)
        if route is None:
            self._violation(f"{where}: no such operation in contracts/deltadefi")
            return NO_ROUTE[0], json.dumps(NO_ROUTE[1])
        name = route.contract["operation"]
        if route.template in self.missing_paths:
            return NO_ROUTE[0], json.dumps(NO_ROUTE[1])
        if self.failing:
            return self._reply(name, *UNAVAILABLE)
        auth = route.contract.get("auth")
        key = str(headers.get(auth["name"], "") if auth else "")
        if auth and auth.get("required") and not key:
            self._violation(f"{where}: no {auth['name']} header")
            return self._reply(name, *UNAUTHORIZED)
        if auth and self.valid_keys is not None and key not in self.valid_keys:
            self._violation(f"{where}: {auth['name']} is not a valid key")
            return self._reply(name, *UNAUTHORIZED)
        query = parse_qs(query_text, keep_blank_values=True)
        params, problems = _parameters(route, query, found)
        if problems:
            self._violation(f"{where}: {'; '.join(problems)}")
            return self._reply(name, *INVALID)
        symbol = params.get("symbol")
        if symbol is not None and symbol not in self.trading_pairs:
            self._violation(f"{where}: symbol {symbol!r} is not a trading pair of "
                            "/app/market-config")
            return self._reply(name, *BAD_SYMBOL)
        fault = self.faults.get((route.template, symbol)) or self.faults.get(
            (route.template, None))
        if fault is not None:
            with self._lock:
                self._keep(self.replies, (name, fault[0], _loads(fault[1]), True))
            return fault
        with self._lock:
            status, body = self._deltadefi(name, key, params)
        return self._reply(name, status, body)

    def _route(self, path: str) -> tuple[_Route | None, dict[str, str]]:
        for route in self._routes:
            match = route.pattern.match(path)
            if match:
                return route, {k: unquote(v) for k, v in match.groupdict().items()}
        return None, {}

    def _reply(self, name: str, status: int, body: Any) -> tuple[int, str]:
        """The reply's text, once checked against the contract's reply or error schema."""
        text = body if isinstance(body, str) else json.dumps(body, default=str)
        value = _loads(text)
        contract = self.contracts[name]
        kind = "reply" if status == contract["reply"]["status"] else "errors"
        if kind == "errors" and status not in contract["errors"]["statuses"]:
            self._violation(f"reply to {name}: HTTP {status} is not a published status")
        elif not any(v.is_valid(value) for v in self._check[(name, kind)]):
            error = next(iter(self._check[(name, kind)][0].iter_errors(value)), None)
            self._violation(f"reply to {name}: {getattr(error, 'message', error)}"[:300])
        with self._lock:
            self._keep(self.replies, (name, status, value, False))
        return status, text

    def _violation(self, text: str) -> None:
        with self._lock:
            self._keep(self.contract_violations, text)

    @staticmethod
    def _keep(into: list[Any], item: Any) -> None:
        into.append(item)
        if len(into) > MAX_KEPT:
            del into[: len(into) - MAX_KEPT]

    def _deltadefi(self, name: str, key: str, params: dict[str, Any]) -> tuple[int, Any]:
        """The answer from the account's record, in the contract's shapes (lock held)."""
        if name == "get-app-market-config":
            return 200, self.market_config
        if name == "get-accounts-balance":
            return 200, _balance_text(self._dd_balance.get(key, []), self.balance_as_text)
        orders = [_rest_order(o) for o in self._dd_orders.get(key, {}).values()]
        if name == "get-account-order":
            order = next((o for o in orders if str(o.get("id")) == params["id"]), None)
            return (200, order) if order is not None else NOT_FOUND
        rows = sorted((o for o in orders if o.get("symbol") == params["symbol"]),
                      key=lambda o: (str(o.get("created_at") or ""),
                                     str(o.get("updated_at") or ""), str(o.get("id"))))
        if name == "get-accounts-open-orders":
            rows = [o for o in rows if o.get("status") in DD_OPEN]
        else:
            rows = [o for o in rows if o.get("order_execution_records")
                    or str(o.get("executed_base_qty") or "0").strip().strip("0.")]
        if not self.records_in_lists:
            rows = [{**o, "order_execution_records": []} for o in rows]
        page, limit = params.get("page", 1), params.get("limit", 10)
        return 200, {"data": rows[(page - 1) * limit: page * limit], "total_count": len(rows),
                     "total_page": -(-len(rows) // limit)}

    # --- SoDEX, held to its contract --------------------------------------------------------

    def _sodex_request(self, method: str, path: str, query_text: str) -> tuple[int, str]:
        """Check the request against contracts/sodex, then answer it (and check the answer)."""
        where = f"{method} {path}"
        segments = path.strip("/").split("/")
        what = "/".join(segments[5:])
        contract = self._sx_ops.get(what) if len(segments) >= 6 \
            and segments[3] == "accounts" else None
        market = segments[2] if len(segments) > 2 else ""
        if contract is None or market not in contract["markets"]:
            self._violation(f"{where}: no such operation in contracts/sodex")
            return self._sx_error_reply(None, market, 404, "no such endpoint")
        name = contract["operation"]
        if method != "GET":
            self._violation(f"{where}: the contract publishes GET")
            return self._sx_error_reply(name, market, 405, "method not allowed")
        address = segments[4]
        if not SX_ADDRESS.match(address):
            self._violation(f"{where}: {address[:50]!r} is not an address (0x and 40 hex digits)")
            return self._sx_error_reply(name, market, 400, "invalid address")
        if self.failing:
            return self._sx_error_reply(name, market, 503, "maintenance")
        route = _Route(contract, contract["path"], re.compile(""),
                       tuple(p for p in contract["parameters"] if p["in"] == "query"))
        params, problems = _parameters(route, parse_qs(query_text, keep_blank_values=True), {})
        if params.get("startTime", 0) > params.get("endTime", 2**62):
            problems.append("endTime is before startTime")
        if problems:
            self._violation(f"{where}: {'; '.join(problems)}")
            return self._sx_error_reply(name, market, 400, "; ".join(problems)[:200])
        with self._lock:
            data = self._sodex(name, (address.lower(), market), market, params)
        return self._sx_reply(name, market, 200, {"code": 0, "message": "",
                                                  "data": data, "timestamp": _now_ms()})

    def _sx_error_reply(self, name: str | None, market: str, status: int,
                        why: str) -> tuple[int, str]:
        """The error envelope both SDKs read: a non-zero code, the reason in `message` (Go,
        python) and in `error` (TS)."""
        return self._sx_reply(name, market, status, {"code": status, "message": why,
                                                     "error": why, "timestamp": _now_ms()})

    def _sx_reply(self, name: str | None, market: str, status: int,
                  body: dict[str, Any]) -> tuple[int, str]:
        """The reply's text, once checked against the contract's reply (or error) schema."""
        text = json.dumps(body, default=str)
        value = json.loads(text)
        if status == 200 and name is not None:
            validators = self._sx_replies[(name, market)]
            if not any(v.is_valid(value) for v in validators):
                error = next(iter(validators[0].iter_errors(value)), None)
                self._violation(f"reply to {name} ({market}): "
                                f"{getattr(error, 'message', error)}"[:300])
        elif not self._sx_error.is_valid(value):
            self._violation(f"error reply to {name} ({market}) off the contract")
        with self._lock:
            self._keep(self.sodex_replies, (name, market, status, value))
        return status, text

    def _sodex(self, name: str, key: tuple[str, str], market: str,
               params: dict[str, Any]) -> Any:
        """The SDKs' REST shapes (long keys, `contracts/sodex/`), built from what was pushed
        in the stream's short keys (lock held)."""
        block = {"blockTime": _now_ms(), "blockHeight": 2211}
        symbol = params.get("symbol")
        if name == "get-accounts-balances":
            return {**block, "balances": [_sx_balance(b, market)
                                          for b in self._sx_balances.get(key, {}).values()]
                    or None}
        orders = [o for o in self._sx_orders.get(key, {}).values()
                  if symbol is None or o.get("s") == symbol]
        if name == "get-accounts-orders":
            return {**block, "orders": [_sx_order(o, market) for o in orders
                                        if str(o.get("X")).upper() in ("NEW", "PARTIALLY_FILLED")]
                    or None}
        if name == "get-accounts-positions":
            rows = [p for p in self._sx_positions.get(key, {}).values()
                    if (symbol is None or p.get("s") == symbol) and _amount(p.get("sz"))]
            wrap = "orders" if self.sodex_positions_shape == "go" else "positions"
            return {**block, wrap: [_sx_position(p, self.sodex_positions_shape) for p in rows]
                    or None}
        start, end = params.get("startTime", 0), params.get("endTime", 2**62)
        limit = min(params.get("limit", SX_DEFAULT_LIMIT), self.sodex_page_size)
        if name == "get-accounts-orders-history":
            rows = [_sx_order(o, market) for o in orders
                    if start <= int(o.get("E") or 0) <= end]
            rows.sort(key=lambda o: (o["updatedAt"] or 0, str(o["orderID"])))
        else:
            rows = [_sx_trade(t) for t in self._sx_trades.get(key, {}).values()
                    if (symbol is None or t.get("s") == symbol)
                    and start <= int(t.get("E") or 0) <= end]
            rows.sort(key=lambda t: (t["time"] or 0, str(t["tradeID"])))
        return rows[:limit] or None


def _error_schema(contracts: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The error envelope's schema (the same in every SoDEX REST contract)."""
    return contracts["get-accounts-balances"]["errors"]["schema"]


def _now_ms() -> int:
    return int(time.time() * 1000)


def _amount(value: Any) -> Decimal:
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return Decimal(0)


def _sx_balance(b: dict[str, Any], market: str) -> dict[str, Any]:
    if market == "perps":
        return {"id": b.get("i", 0), "coin": b.get("a"), "total": b.get("wb", b.get("t")),
                "marginRatio": b.get("mr", "1"), "price": b.get("px")}
    return {"id": b.get("i", 0), "coin": b.get("a"), "total": b.get("t"),
            "locked": b.get("l", "0")}


def _sx_order(o: dict[str, Any], market: str) -> dict[str, Any]:
    row = {"orderID": o.get("i"), "clOrdID": o.get("c", ""), "symbol": o.get("s"),
           "side": o.get("S"), "type": o.get("o"), "timeInForce": o.get("f"),
           "price": o.get("p"), "origQty": o.get("q"), "executedQty": o.get("z") or "0",
           "executedValue": o.get("v") or "0", "marginFrozen": o.get("M") or "0",
           "status": o.get("X"), "createdAt": o.get("E"), "updatedAt": o.get("E")}
    if market == "perps":
        row.update(positionSide=o.get("ps") or "BOTH", reduceOnly=bool(o.get("R", False)))
    return row


def _sx_trade(t: dict[str, Any]) -> dict[str, Any]:
    return {"tradeID": t.get("t"), "orderID": t.get("i"), "clOrdID": t.get("c", ""),
            "symbol": t.get("s"), "side": t.get("S"), "price": t.get("p"),
            "quantity": t.get("q"), "fee": t.get("f"), "feeCoin": "vUSDC", "time": t.get("E"),
            "isMaker": t.get("m")}


def _sx_position(p: dict[str, Any], shape: str) -> dict[str, Any]:
    """A pushed position (accountUpdate's or accountState's keys) as /positions lists it."""
    mode = p.get("m")
    mode = SX_MODES.get(mode, "CROSS") if isinstance(mode, int) else (
        str(mode).upper() if mode else "ISOLATED" if p.get("iw") is not None else "CROSS")
    size, entry, side = str(p.get("sz")), str(p.get("ep") or "0"), p.get("ps") or "BOTH"
    margin, leverage = str(p.get("iw") or "0"), int(p.get("l") or 10)
    now = _now_ms()
    if shape == "go":
        return {"symbol": p.get("s"), "symbolID": p.get("i", 1), "accountID": 1001,
                "positionSide": side, "quantity": size, "entryPrice": entry,
                "markPrice": entry, "liquidationPrice": str(p.get("lp") or "0"),
                "unrealizedPnl": str(p.get("ur") or "0"), "leverage": leverage,
                "marginMode": mode, "margin": margin}
    common = {"id": p.get("i", 1), "symbol": p.get("s"), "marginMode": mode, "size": size,
              "avgEntryPrice": entry, "leverage": leverage, "active": True, "createdAt": now,
              "updatedAt": now}
    if shape == "python":
        return {**common, "positionSide": side, "liquidationPrice": str(p.get("lp") or "0"),
                "unrealizedPnl": str(p.get("ur") or "0"), "margin": margin}
    return {**common, "side": side, "initialMargin": margin,
            "cumOpenCost": str(p.get("co") or "0"), "cumTradingFee": "0",
            "cumClosedSize": "0", "avgClosePrice": "0", "maxSize": size.lstrip("-"),
            "realizedPnL": "0", "isTakenOver": False, "takeOverPrice": "0"}


def _parsed(frame: Any) -> dict[str, Any]:
    """A pushed frame as an object, its numbers exact (balances are served as pushed)."""
    if isinstance(frame, dict):
        return frame
    try:
        value = json.loads(frame, parse_float=Decimal)
    except (ValueError, TypeError, RecursionError):
        return {}
    return value if isinstance(value, dict) else {}


def _parameters(route: _Route, query: dict[str, list[str]],
                in_path: dict[str, str]) -> tuple[dict[str, Any], list[str]]:
    """The request's parameters read as the contract types them, and what is wrong with
    them: unknown, repeated, missing when required, or not of the published type and range."""
    known = {p["name"] for p in route.parameters if p["in"] == "query"}
    problems = [f"unknown parameter {name!r}" for name in query if name not in known]
    values: dict[str, Any] = {}
    for spec in route.parameters:
        name = spec["name"]
        given = [in_path[name]] if spec["in"] == "path" and name in in_path \
            else query.get(name, [])
        if len(given) > 1:
            problems.append(f"{name} given {len(given)} times")
            continue
        if not given or given[0] == "":
            if spec.get("required"):
                problems.append(f"{name} is required")
            continue
        value, problem = _typed(given[0], spec.get("schema") or {})
        if problem:
            problems.append(f"{name}={given[0][:40]!r}: {problem}")
        else:
            values[name] = value
    return values, problems


def _typed(text: str, schema: dict[str, Any]) -> tuple[Any, str | None]:
    """A query value as the contract types it, or why it is not one (integers are bounded)."""
    if schema.get("type") != "integer":
        return text, None
    if not re.fullmatch(r"-?[0-9]{1,19}", text):  # a time in ms has 13 digits
        return None, "not an integer"
    value = int(text)
    if "minimum" in schema and value < schema["minimum"]:
        return None, f"below {schema['minimum']}"
    if "maximum" in schema and value > schema["maximum"]:
        return None, f"above {schema['maximum']}"
    return value, None


def _rest_order(order: dict[str, Any]) -> dict[str, Any]:
    """A pushed order as REST lists it: the status in the contract's enum."""
    status = order.get("status")
    return {**order, "status": DD_STATUS.get(status, status)} if isinstance(status, str) \
        else order


def _balance_text(rows: list[dict[str, Any]], as_text: bool) -> str:
    """Balances as the docs show them, amounts as JSON numbers written exactly as pushed (or
    as strings, the SDKs' variant); an amount that is no number stays as it came."""
    def amount(value: Any) -> str:
        try:
            number = Decimal(str(value))
        except (InvalidOperation, ValueError):
            return json.dumps(value, default=str)
        if not number.is_finite():
            return json.dumps(str(value))
        return json.dumps(str(number)) if as_text else str(number)

    items = []
    for b in rows:
        fields = [f"{json.dumps(k)}:{json.dumps(b.get(k), default=str)}"
                  for k in ("asset", "asset_unit") if k in b]
        fields += [f"{json.dumps(k)}:{amount(b.get(k))}" for k in ("free", "locked") if k in b]
        items.append("{" + ",".join(fields) + "}")
    return "[" + ",".join(items) + "]"


def _loads(text: str) -> Any:
    """A reply's text as the client will read it, for the schema check and the record."""
    try:
        return json.loads(text)
    except ValueError:
        return text
