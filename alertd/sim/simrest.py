"""The simulated exchange's REST side: the account as the pushed frames left it.

Every frame the simulator pushes (or is told happened while nobody listened) updates this
record, and the REST endpoints of both exchanges answer from it in their documented shapes,
so catch-up is exercised end to end on 127.0.0.1.

DeltaDeFi's side is held to `contracts/deltadefi/`: a request off the contract (unknown path,
missing or ill-formed parameter, unknown trading pair, missing or bad X-API-KEY) gets the
exchange's own error answer and is listed in `contract_violations`, and every reply is checked
against the contract's reply schema, so a client written from a misreading fails here first.
Lists are paged as published and come oldest first, an order the contract does not promise.
"""

from __future__ import annotations

import copy
import json
import re
import threading
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
        self._sx_balances: dict[tuple[str, str], dict[str, Any]] = {}
        self._sx_positions: dict[tuple[str, str], dict[str, Any]] = {}
        self._sx_orders: dict[tuple[str, str], dict[str, Any]] = {}
        self._sx_trades: dict[tuple[str, str], list[dict[str, Any]]] = {}

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
        key = (user.lower(), market)
        rows = data if isinstance(data, list) else [data] if isinstance(data, dict) else []
        with self._lock:
            for row in rows:
                if channel in ("accountUpdate", "accountState"):
                    for b in row.get("B") or ():
                        self._sx_balances.setdefault(key, {})[b.get("a")] = b
                    for p in row.get("P") or ():
                        self._sx_positions.setdefault(key, {})[(p.get("s"), p.get("ps"))] = p
                elif channel == "accountOrderUpdate":
                    self._sx_orders.setdefault(key, {})[str(row.get("i"))] = row
                elif channel == "accountTrade":
                    self._sx_trades.setdefault(key, []).append(row)

    # --- the endpoints --------------------------------------------------------------------------

    def answer(self, path: str, headers: Any) -> tuple[int, str] | None:
        """The reply to a REST request; it is listed in `requests` once its reply is made."""
        reply = self._answer(path, headers)
        if reply is not None:
            self.requests.append(urlsplit(path).path)
        return reply

    def _answer(self, path: str, headers: Any) -> tuple[int, str] | None:
        parts = urlsplit(path)
        if parts.path.startswith("/api/v1/"):
            segments = parts.path.strip("/").split("/")
            if len(segments) < 6 or segments[3] != "accounts":
                return 404, '{"code":404,"message":"no such endpoint"}'
            if self.failing:
                return 503, '{"code":503,"message":"maintenance"}'
            query = {k: v[0] for k, v in parse_qs(parts.query).items()}
            return self._sodex(segments[4], segments[2], "/".join(segments[5:]), query)
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

    def _sodex(self, user: str, market: str, what: str,
               query: dict[str, str]) -> tuple[int, str]:
        """The SDK's REST shapes (long keys, sodex-python-sdk `client/types.py`), built from
        what was pushed in the stream's short keys."""
        key = (user.lower(), market)
        start, end = int(query.get("startTime", 0)), int(query.get("endTime", 2**62))
        with self._lock:
            orders = list(self._sx_orders.get(key, {}).values())
            if what == "state":
                data: Any = {"user": user, "aid": 1, "uid": 1}
            elif what == "balances":
                data = {"balances": [
                    {"id": b.get("i", 0), "coin": b.get("a"), "total": b.get("t", b.get("wb")),
                     "locked": b.get("l", "0")}
                    for b in self._sx_balances.get(key, {}).values()]}
            elif what == "positions":
                data = {"orders": [
                    {"symbol": p.get("s"), "quantity": p.get("sz"), "entryPrice": p.get("ep"),
                     "positionSide": p.get("ps") or "BOTH", "margin": p.get("iw"),
                     "marginMode": "cross" if p.get("iw") is None else "isolated"}
                    for p in self._sx_positions.get(key, {}).values()]}
            elif what == "orders":
                data = {"orders": [_sx_order(o) for o in orders
                                   if str(o.get("X")).upper() in ("NEW", "PARTIALLY_FILLED")]}
            elif what == "orders/history":
                data = [_sx_order(o) for o in orders
                        if start <= int(o.get("E") or 0) <= end] or None
            elif what == "trades":
                data = [_sx_trade(t) for t in self._sx_trades.get(key, [])
                        if start <= int(t.get("E") or 0) <= end] or None
            else:
                return 404, '{"code":404,"message":"no such endpoint"}'
        return 200, json.dumps({"code": 0, "message": "ok", "data": data})


def _sx_order(o: dict[str, Any]) -> dict[str, Any]:
    return {"orderID": o.get("i"), "clOrdID": o.get("c", ""), "symbol": o.get("s"),
            "side": o.get("S"), "type": o.get("o"), "timeInForce": o.get("f"),
            "price": o.get("p"), "origQty": o.get("q"), "executedQty": o.get("z"),
            "status": o.get("X"), "createdAt": o.get("E"), "updatedAt": o.get("E")}


def _sx_trade(t: dict[str, Any]) -> dict[str, Any]:
    return {"tradeID": t.get("t"), "orderID": t.get("i"), "clOrdID": t.get("c", ""),
            "symbol": t.get("s"), "side": t.get("S"), "price": t.get("p"),
            "quantity": t.get("q"), "fee": t.get("f"), "feeCoin": "", "time": t.get("E"),
            "isMaker": t.get("m")}


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
    if not re.fullmatch(r"-?[0-9]{1,12}", text):
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
