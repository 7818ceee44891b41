"""DeltaDeFi's REST API as published (contracts/deltadefi/): the simulator is held to it, and
alertd's catch-up is held to the simulator, per trading pair, paged, partial when it must be.

Issue 15: `symbol` is required on the order lists, so a catch-up without it was answered 400
by the real API and lost everything, balances included, while our simulator accepted it."""

from __future__ import annotations

import copy
import json
import re
import time
from decimal import Decimal
from pathlib import Path

import jsonschema
import pytest
import requests

from alertd.domain.account import Account
from alertd.domain.observations import Source
from alertd.exchanges.common import PartialCatchUp
from alertd.exchanges.deltadefi import rest
from alertd.exchanges.deltadefi.rest import DeltaDefiCatchUp
from alertd.rules.load import load_rules
from alertd.runtime.pipeline import Pipeline
from alertd.sim.frames import dd_balance, dd_order
from alertd.sim.simrest import contracts_dir, load_contracts
from alertd.storage.store import Store
from alertd.transport.http import Http, RestError
from tests.conftest import API_KEY, agent_config, running, write
from tests.sinks import HttpSink, wait_for

DD = "deltadefi:" + API_KEY
T0 = 1_790_000_000.0
"""A fixed time the direct catch-ups run at (2026-09-21): nothing here reads the wall clock
except the agent tests, whose agent stamps its own gap window."""
HEX40 = re.compile(r"^[0-9a-f]{40}$")

RULES = """
rules:
  - name: fill
    on: fill
    notify: [hook]
    group_wait: 0
    title: "fill {account} {symbol} {trade_id} {qty} caught_up={caught_up}"
  - name: low-ada
    on: balance
    when: {asset: ada, free: {lt: 500}}
    notify: [hook]
    group_wait: 0
    title: "low ada {free}"
"""


def wall_now() -> float:
    """The agent stamps its gap window with the wall clock, so frames it reads must be recent
    (only the agent tests use this)."""
    return time.time()  # wall clock ok: the agent's gap window is on the wall clock


def order(order_id: str, symbol: str = "ADAUSDM", status: str = "closed",
          records: list[tuple[str, str]] | None = None, executed: str = "5", *,
          at: float = T0) -> dict:
    """An order_info frame on `symbol` (the builder's frames are on ADAUSDM)."""
    frame = dd_order(order_id, status, [("r-" + order_id, executed)] if records is None
                     else records, executed, qty="100", at=at)
    frame["order"]["symbol"] = symbol
    return frame


def catch_up(sim, clock=lambda: T0) -> DeltaDefiCatchUp:
    return DeltaDefiCatchUp(Account("main", "deltadefi", sim.deltadefi_url, api_key=API_KEY),
                            clock=clock)


def rest_base(sim) -> str:
    return f"http://127.0.0.1:{sim.port}"


def fills(frames: list[dict]) -> set[str]:
    return {r["id"] for f in frames if f["sub_type"] == "order_info"
            for r in f["order"].get("order_execution_records") or ()}


# --- the contract files ---------------------------------------------------------------------

def _from_published(defs: dict, ref: dict, prefix: str) -> dict:
    """The conversion the contract files state: refs into `$defs`, values unchanged."""
    found: dict = {}

    def walk(node):
        if isinstance(node, dict):
            out = {}
            for k, v in node.items():
                if k == "$ref" and isinstance(v, str) and v.startswith(prefix):
                    name = v[len(prefix):]
                    out[k] = "#/$defs/" + name
                    if name not in found:
                        found[name] = None
                        found[name] = walk(defs[name])
                else:
                    out[k] = walk(v)
            return out
        return [walk(v) for v in node] if isinstance(node, list) else node

    root = walk(ref)
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", **root,
            "$defs": dict(sorted(found.items()))}


def test_each_contract_names_its_source_and_states_the_published_block_unchanged():
    contracts = load_contracts("deltadefi")
    assert set(contracts) == {"get-accounts-balance", "get-accounts-open-orders",
                              "get-accounts-trade-orders", "get-account-order",
                              "get-app-market-config"}
    folder = contracts_dir() / "deltadefi"
    for name, c in contracts.items():
        source = c["source"]
        assert source["repo"] == "deltadefi-protocol/deltadefi-docs", name
        assert HEX40.match(source["commit"]) and source["path"], name
        assert all(HEX40.match(a["commit"]) for a in c["also"]), name
        assert c["notes"], name
        for kind in ("reply", "errors"):
            jsonschema.Draft202012Validator.check_schema(c[kind]["schema"])
        published = json.loads((folder / c["published"]).read_text(encoding="utf-8"))
        if "openapi" in published:
            op = published["paths"][c["path"]]["get"]
            defs, prefix = published["components"]["schemas"], "#/components/schemas/"
            reply = op["responses"]["200"]["content"]["application/json"]["schema"]
            error = next(v for s, v in op["responses"].items() if s != "200")[
                "content"]["application/json"]["schema"]
            params = [(p["name"], p["in"], bool(p.get("required")))
                      for p in op.get("parameters", ())]
        else:  # the Swagger 2.0 file: only /accounts/balance is published there
            op = published["paths"][c["path"]]["get"]
            defs, prefix = published["definitions"], "#/definitions/"
            reply, error = op["responses"]["200"]["schema"], op["responses"]["400"]["schema"]
            params = [(p["name"], p["in"], bool(p.get("required"))) for p in op["parameters"]]
        assert c["reply"]["schema"] == _from_published(defs, reply, prefix), name
        assert c["errors"]["schema"] == _from_published(defs, error, prefix), name
        assert sorted(int(s) for s in op["responses"] if s != "200") == \
            c["errors"]["statuses"], name
        ours = [(p["name"], p["in"], p["required"]) for p in c["parameters"]]
        if c["auth"]:
            ours.append((c["auth"]["name"], "header", c["auth"]["required"]))
        assert sorted(p for p in params) == sorted(p for p in ours if p in params or
                                                   p[0] != "X-API-KEY"), name
    paged = contracts["get-accounts-open-orders"]
    assert [(p["name"], p["required"]) for p in paged["parameters"]] == [
        ("symbol", True), ("page", False), ("limit", False)]
    assert paged["pagination"]["row_order"] is None
    assert [v["path"] for v in contracts["get-account-order"]["variants"]] == [
        "/accounts/order/{id}"]


def test_the_catch_up_calls_only_what_the_contracts_publish():
    contracts = load_contracts("deltadefi")
    paths = {c["path"] for c in contracts.values()} | {
        v["path"] for c in contracts.values() for v in c.get("variants", ())}
    assert {rest.BALANCE, rest.MARKET_CONFIG, rest.OPEN_ORDERS, rest.TRADE_ORDERS,
            *rest.ORDER_PATHS} == paths
    for name in ("get-accounts-open-orders", "get-accounts-trade-orders"):
        bounds = {p["name"]: p["schema"] for p in contracts[name]["parameters"]}
        assert bounds["limit"]["maximum"] >= rest.LIMIT
        assert bounds["page"]["maximum"] >= rest.MAX_PAGE


# --- (a) the simulator is held to the contract ------------------------------------------------

def test_the_simulator_refuses_a_list_without_symbol_with_400_and_records_it(sim):
    key = {"X-API-KEY": API_KEY}
    reply = requests.get(rest_base(sim) + "/accounts/open-orders", headers=key, timeout=5)
    assert reply.status_code == 400
    assert reply.json() == {"code": 4000, "error": "Invalid request data"}
    assert sim.contract_violations == ["GET /accounts/open-orders: symbol is required"]
    with pytest.raises(RestError, match="HTTP 400"):
        Http().get(rest_base(sim) + "/accounts/trade-orders", params={"page": 1}, headers=key)
    assert "symbol is required" in sim.contract_violations[-1]
    cases = [
        ("/accounts/trade-orders", {"symbol": "ADAUSDM", "limit": 500}, key, 400, 4000),
        ("/accounts/trade-orders", {"symbol": "ADAUSDM", "page": "x"}, key, 400, 4000),
        ("/accounts/open-orders", {"symbol": "ADAUSDM", "since": 1}, key, 400, 4000),
        ("/accounts/open-orders", {"symbol": "BTCUSDM"}, key, 400, 4106),
        ("/accounts/balance", {}, {}, 401, 4010),
        ("/accounts/balance", {}, {"X-API-KEY": "wrong"}, 401, 4010),
        ("/account/order", {}, key, 400, 4000),
    ]
    for path, params, headers, status, code in cases:
        reply = requests.get(rest_base(sim) + path, params=params, headers=headers, timeout=5)
        assert (reply.status_code, reply.json()["code"]) == (status, code), (path, params)
    assert len(sim.contract_violations) == 2 + len(cases)
    assert requests.get(rest_base(sim) + "/accounts/order-records", headers=key,
                        timeout=5).status_code == 404
    assert "no such operation" in sim.contract_violations[-1]
    before = len(sim.contract_violations)
    for path, params in [("/accounts/open-orders", {"symbol": "NIGHTUSDM", "limit": 250}),
                         ("/accounts/balance", {}), ("/app/market-config", {})]:
        reply = requests.get(rest_base(sim) + path, params=params,
                             headers=key if path != "/app/market-config" else {}, timeout=5)
        assert reply.status_code == 200, path
    assert len(sim.contract_violations) == before


# --- (b) a full agent catch-up against the simulator ------------------------------------------

def test_a_catch_up_keeps_the_contract_and_catches_a_fill_missed_on_the_second_pair(
        tmp_path, sim, rules_dir):
    assert sim.rest.trading_pairs[:2] == ["ADAUSDM", "NIGHTUSDM"]
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        with running(cfg, rules_dir):
            assert sim.wait_ready(DD)
            sim.push_deltadefi(API_KEY, order("a1", at=wall_now()))
            assert wait_for(lambda: "fill main ADAUSDM r-a1 5 caught_up=no" in sink.titles())
        sim.push_deltadefi(API_KEY, order("n1", "NIGHTUSDM", "open", [("n-r1", "7")], "7",
                                          at=wall_now()), live=False)
        sim.push_deltadefi(API_KEY, dd_balance("120"), live=False)
        with running(cfg, rules_dir):
            assert sim.wait_ready(DD, connects=2)
            assert wait_for(lambda: {"fill main NIGHTUSDM n-r1 7 caught_up=yes",
                                     "low ada 120"} <= set(sink.titles()), 15), sink.titles()
            wait_for(lambda: False, 0.5)  # time for a duplicate to show itself
    assert sorted(t for t in sink.titles() if t.startswith("fill")) == [
        "fill main ADAUSDM r-a1 5 caught_up=no", "fill main NIGHTUSDM n-r1 7 caught_up=yes"]
    assert sim.contract_violations == []
    asked = {(name, status) for name, status, _, _ in sim.rest.replies}
    assert {("get-app-market-config", 200), ("get-accounts-balance", 200),
            ("get-accounts-open-orders", 200), ("get-accounts-trade-orders", 200)} <= asked


# --- (c) every reply validates against the contract ------------------------------------------

def validate_replies(sim) -> int:
    """Every reply the simulator made, checked with `jsonschema` against its contract's reply
    schema (200) or error schema (else); returns how many were checked."""
    contracts = load_contracts("deltadefi")
    checked = 0
    for name, status, body, faulted in sim.rest.replies:
        if faulted:
            continue
        c = contracts[name]
        if status == c["reply"]["status"]:
            schemas = [c["reply"]["schema"]] + [v["schema"] for v in c.get("reply_variants", ())]
            errors = [list(jsonschema.Draft202012Validator(s).iter_errors(body))
                      for s in schemas]
            assert any(not e for e in errors), (name, errors[0][:1])
        else:
            assert status in c["errors"]["statuses"], (name, status)
            jsonschema.Draft202012Validator(c["errors"]["schema"]).validate(body)
            assert set(body) == {"code", "error"}, body
        checked += 1
    return checked


def test_every_reply_of_the_simulator_validates_against_the_contract(sim):
    sim.push_deltadefi(API_KEY, dd_balance("1383.52097"))
    sim.push_deltadefi(API_KEY, order("a1", status="partially_filled", executed="5"))
    sim.push_deltadefi(API_KEY, order("a2", status="closed", records=[], executed="5"))
    sim.push_deltadefi(API_KEY, order("n1", "NIGHTUSDM", status="open", executed="0",
                                      records=[]))
    frames = catch_up(sim).frames(Http(), T0 - 3600)
    assert {f["order"]["id"] for f in frames[1:]} == {"a1", "a2", "n1"}
    for path, params, headers in [
            ("/accounts/open-orders", {}, {"X-API-KEY": API_KEY}),
            ("/accounts/balance", {}, {}),
            ("/accounts/order/nope", {}, {"X-API-KEY": API_KEY}),
            ("/account/order", {"id": "a1"}, {"X-API-KEY": API_KEY}),
            ("/accounts/trade-orders", {"symbol": "NIGHTUSDM", "page": 3, "limit": 1},
             {"X-API-KEY": API_KEY})]:
        requests.get(rest_base(sim) + path, params=params, headers=headers, timeout=5)
    sim.rest.balance_as_text = True
    requests.get(rest_base(sim) + "/accounts/balance", headers={"X-API-KEY": API_KEY},
                 timeout=5)
    sim.rest.failing = True
    requests.get(rest_base(sim) + "/app/market-config", timeout=5)
    assert validate_replies(sim) == len(sim.rest.replies) >= 13
    names = {name for name, *_ in sim.rest.replies}
    assert names == set(load_contracts("deltadefi"))
    served = [b for n, s, b, _ in sim.rest.replies if n == "get-accounts-balance" and s == 200]
    assert served[0][1]["free"] == 1383.52097 and served[-1][1]["free"] == "1383.52097"
    assert len(sim.contract_violations) == 2  # the two requests above made off the contract
    assert all("reply" not in v for v in sim.contract_violations)


def test_the_simulator_records_a_reply_of_its_own_off_the_contract(sim):
    """Its self-check: an order pushed in a shape the contract does not have is listed."""
    bad = order("a1")
    bad["order"]["commission_rate_bp"] = "ten"
    sim.push_deltadefi(API_KEY, bad)
    requests.get(rest_base(sim) + "/accounts/trade-orders", params={"symbol": "ADAUSDM"},
                 headers={"X-API-KEY": API_KEY}, timeout=5)
    assert len(sim.contract_violations) == 1
    assert sim.contract_violations[0].startswith("reply to get-accounts-trade-orders:")


# --- (d) paging -------------------------------------------------------------------------------

def test_every_open_order_is_read_across_pages_though_the_rows_come_oldest_first(sim):
    for i in range(600):
        sim.push_deltadefi(API_KEY, order(f"o{i:03}", status="open", records=[],
                                          executed="0", at=T0 - 86400 * 30 + i * 60),
                           live=False)
    frames = catch_up(sim).frames(Http(), T0 - 3600)
    assert sorted(f["order"]["id"] for f in frames[1:]) == [f"o{i:03}" for i in range(600)]
    pages = [b for n, s, b, _ in sim.rest.replies if n == "get-accounts-open-orders"
             and b["total_count"] == 600]
    assert [len(p["data"]) for p in pages] == [250, 250, 100]
    assert {p["total_page"] for p in pages} == {3}
    ids = [row["id"] for p in pages for row in p["data"]]
    assert ids == sorted(ids)  # oldest first: the simulator promises what the API does not
    assert sim.contract_violations == []


def test_the_trade_orders_of_the_window_are_read_from_the_end_when_rows_come_oldest_first(sim):
    """2000 trade orders, the last 100 inside the gap window: reading from page 1 would give
    the oldest 1000; the catch-up sees the order on page 1 and reads the last pages first."""
    for i in range(2000):
        sim.push_deltadefi(API_KEY, order(f"t{i:04}", at=T0 - 86400 * 10 + i * 400),
                           live=False)
    since = T0 - 86400 * 10 + 1900 * 400
    frames = catch_up(sim).frames(Http(), since)
    assert fills(frames) == {f"r-t{i:04}" for i in range(1900, 2000)}
    asked = [b for n, s, b, _ in sim.rest.replies if n == "get-accounts-trade-orders"
             and b["total_count"] == 2000]
    assert len(asked) == 3  # page 1 (oldest), page 8 (the window), page 7 (wholly older): done
    assert sim.contract_violations == []


class FakeHttp:
    """Answers the catch-up's calls from a function, counting them; no sockets."""

    def __init__(self, pages, pairs=("ADAUSDM", "NIGHTUSDM")) -> None:
        self.pages, self.pairs, self.calls = pages, pairs, []

    def get(self, url, params=None, headers=None):
        path = url.split("://", 1)[1].split("/", 1)[1]
        self.calls.append(("/" + path, dict(params or {})))
        if path == "app/market-config":
            return {"assets": [], "trading_pairs": [{"symbol": s} for s in self.pairs]}
        if path == "accounts/balance":
            return [{"asset": "ada", "asset_unit": "", "free": Decimal("600"), "locked": 0}]
        return self.pages("/" + path, params or {})


def rows(first: int, count: int, step: int = 60, base: float = T0) -> list[dict]:
    return [order(f"x{i}", at=base - i * step)["order"] for i in range(first, first + count)]


def test_newest_first_pages_stop_at_the_first_page_wholly_older_than_the_window():
    def pages(path, params):
        if path == rest.OPEN_ORDERS or params["symbol"] != "ADAUSDM":
            return {"data": [], "total_count": 0, "total_page": 0}
        n = params["page"]
        return {"data": rows((n - 1) * 250, 250), "total_count": 5000, "total_page": 20}

    http = FakeHttp(pages)
    frames = DeltaDefiCatchUp(Account("m", "deltadefi", "wss://x/accounts/stream",
                                      api_key="k"), clock=lambda: T0).frames(http, T0 - 300 * 60)
    assert len(fills(frames)) == 301
    asked = [p["page"] for path, p in http.calls if path == rest.TRADE_ORDERS
             and p["symbol"] == "ADAUSDM"]
    assert asked == [1, 2, 3]  # page 3 is wholly older than the window: no page 4
    assert all(p["limit"] == rest.LIMIT for path, p in http.calls if "page" in p)


def test_a_hostile_server_cannot_keep_the_catch_up_paging():
    def pages(path, params):  # always a full page, always "a billion pages"
        return {"data": rows(params["page"] * 250, 250, step=0, base=T0), "total_count": 10**12,
                "total_page": 10**9}

    http = FakeHttp(pages, pairs=tuple(f"P{i}USDM" for i in range(100)))
    with pytest.raises(PartialCatchUp, match=f"more than {rest.CALL_PAGES} pages"):
        DeltaDefiCatchUp(Account("m", "deltadefi", "wss://x/accounts/stream", api_key="k"),
                         clock=lambda: T0).frames(http, T0 - 60)
    paged = [p for _, p in http.calls if "page" in p]
    assert len(paged) == rest.CALL_PAGES
    assert max(p["page"] for p in paged) <= rest.MAX_PAGE
    assert max(sum(1 for path, p in http.calls if p.get("symbol") == s and path == kind)
               for s in http.pairs for kind in (rest.OPEN_ORDERS, rest.TRADE_ORDERS)) \
        == rest.LIST_PAGES


def test_every_published_reply_variant_is_read():
    """Bare lists (the python-sdk's types), balances as text, `data: null`, and `{order}`."""
    detail = order("v2", records=[("r-v2", "5")])["order"]

    def pages(path, params):
        if path == rest.TRADE_ORDERS and params["symbol"] == "ADAUSDM":
            return [order("v1")["order"], {**detail, "order_execution_records": []}]
        if path.startswith("/accounts/order/"):
            return {"order": detail}
        return {"data": None, "total_count": 0, "total_page": 0}

    http = FakeHttp(pages)
    frames = DeltaDefiCatchUp(Account("m", "deltadefi", "wss://x/accounts/stream",
                                      api_key="k"), clock=lambda: T0).frames(http, T0 - 60)
    assert fills(frames) == {"r-v1", "r-v2"}
    assert frames[0]["balance"][0]["free"] == Decimal("600")


# --- (e) a partial catch-up keeps what it got -------------------------------------------------

def pipeline(tmp_path: Path) -> Pipeline:
    write(tmp_path / "rules" / "r.yaml", RULES)
    return Pipeline(load_rules(tmp_path / "rules", ["hook"]),
                    Store(tmp_path / "s.db", clock=lambda: T0),
                    clock=lambda: T0)


def test_one_pair_failing_keeps_the_balances_and_the_other_pair_s_fills(sim, tmp_path):
    sim.push_deltadefi(API_KEY, dd_balance("120"))
    sim.push_deltadefi(API_KEY, order("a1", executed="5"))
    sim.push_deltadefi(API_KEY, order("n1", "NIGHTUSDM", executed="7"))
    sim.rest.fault("/accounts/trade-orders", symbol="NIGHTUSDM")
    with pytest.raises(PartialCatchUp) as failed:
        catch_up(sim).frames(Http(), T0 - 3600)
    assert "trade orders of NIGHTUSDM" in str(failed.value) and "HTTP 500" in str(failed.value)
    assert "ADAUSDM" not in str(failed.value)
    kept = failed.value.frames
    assert kept[0]["sub_type"] == "balance" and fills(kept) == {"r-a1"}
    alerts = pipeline(tmp_path).catch_up(Source("main", "deltadefi", "spot"), kept, T0 - 7200)
    assert sorted(a.title for a in alerts) == ["fill main ADAUSDM r-a1 5 caught_up=yes",
                                              "low ada 120"]
    assert sim.contract_violations == []


def test_an_error_body_is_an_error_even_with_http_200_not_no_balances(sim):
    sim.push_deltadefi(API_KEY, order("a1"))
    sim.rest.fault("/accounts/balance", status=200,
                   body={"code": 5001, "error": "System resources temporaily unavailable"})
    with pytest.raises(PartialCatchUp, match="balances: DeltaDeFi answered code 5001") as failed:
        catch_up(sim).frames(Http(), T0 - 3600)
    assert all(f["sub_type"] != "balance" for f in failed.value.frames)
    assert fills(failed.value.frames) == {"r-a1"}
    sim.rest.faults.clear()
    sim.rest.fault("/accounts/trade-orders", status=200, body={"code": 4290,
                   "error": "Rate limit exceeded, please try again later"})
    with pytest.raises(PartialCatchUp, match="code 4290"):
        catch_up(sim).frames(Http(), T0 - 3600)


def test_nothing_fetched_is_a_plain_failure(sim):
    sim.rest.failing = True
    with pytest.raises(RestError) as failed:
        catch_up(sim).frames(Http(), T0 - 3600)
    assert not isinstance(failed.value, PartialCatchUp)
    assert "HTTP 500" in str(failed.value)


def test_a_rest_api_that_does_not_answer_is_asked_once_not_once_per_part():
    class Unreachable(FakeHttp):
        def get(self, url, params=None, headers=None):
            self.calls.append(url)
            raise RestError(f"GET {url}: no whole reply within 10 s")

    http = Unreachable(None)
    with pytest.raises(RestError, match="the rest was not asked") as failed:
        DeltaDefiCatchUp(Account("m", "deltadefi", "wss://x/accounts/stream", api_key="k"),
                         clock=lambda: T0).frames(http, T0 - 60)
    assert not isinstance(failed.value, PartialCatchUp) and len(http.calls) == 1


def test_the_trading_pairs_are_cached_and_asked_again_after_a_day(sim):
    now = [T0]
    dd = catch_up(sim, clock=lambda: now[0])

    def asked() -> int:
        return sim.rest.requests.count("/app/market-config")

    dd.frames(Http(), T0 - 60)
    now[0] += 3600
    dd.frames(Http(), T0 - 60)
    assert asked() == 1 and dd.pairs == ("ADAUSDM", "NIGHTUSDM")
    now[0] += rest.PAIRS_TTL
    sim.rest.fault("/app/market-config")
    dd.frames(Http(), T0 - 60)  # refresh fails: the known pairs are used, not an error
    assert asked() == 2 and dd.pairs == ("ADAUSDM", "NIGHTUSDM")
    sim.rest.faults.clear()
    sim.rest.market_config = copy.deepcopy(sim.rest.market_config)
    sim.rest.market_config["trading_pairs"].pop()
    dd.frames(Http(), T0 - 60)  # not refreshed yet, so asked again at once
    assert asked() == 3 and dd.pairs == ("ADAUSDM",)
    now[0] += 3600
    dd.frames(Http(), T0 - 60)
    assert asked() == 3
    assert sim.contract_violations == []


def test_an_order_is_asked_for_by_either_published_path(sim):
    sim.push_deltadefi(API_KEY, order("a1", records=[("r-a1", "5")]))
    sim.push_deltadefi(API_KEY, order("a2", records=[("r-a2", "3")], executed="3"))
    sim.rest.records_in_lists = False  # listed without records: each is asked for by id
    sim.rest.missing_paths = {"/accounts/order/{id}"}  # a server with the docs' path only
    assert fills(catch_up(sim).frames(Http(), T0 - 3600)) == {"r-a1", "r-a2"}
    by_id = [p for p in sim.rest.requests if "order" in p and "orders" not in p]
    assert by_id == ["/accounts/order/a1", "/account/order", "/account/order"]
    sim.rest.missing_paths = set()  # the SDKs' path, as the SDKs call it
    sim.rest.requests.clear()
    assert fills(catch_up(sim).frames(Http(), T0 - 3600)) == {"r-a1", "r-a2"}
    assert [p for p in sim.rest.requests if "order" in p and "orders" not in p] == [
        "/accounts/order/a1", "/accounts/order/a2"]
    assert sim.contract_violations == []


def test_an_agent_keeps_a_partial_catch_up_and_retries_the_pair_that_failed(
        tmp_path, sim, rules_dir):
    import dataclasses

    from tests.conftest import FAST, build_agent

    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        with running(cfg, rules_dir):
            assert sim.wait_ready(DD)
            sim.push_deltadefi(API_KEY, order("a1", at=wall_now()))
            assert wait_for(lambda: "fill main ADAUSDM r-a1 5 caught_up=no" in sink.titles())
        sim.push_deltadefi(API_KEY, dd_balance("120"), live=False)
        sim.push_deltadefi(API_KEY, order("a2", at=wall_now()), live=False)
        sim.push_deltadefi(API_KEY, order("n1", "NIGHTUSDM", at=wall_now()), live=False)
        sim.rest.fault("/accounts/trade-orders", symbol="NIGHTUSDM")
        agent = build_agent(cfg, rules_dir, settings=dataclasses.replace(FAST,
                                                                        catch_up_retry=0.5))
        agent.start()
        try:
            assert wait_for(lambda: {"low ada 120", "fill main ADAUSDM r-a2 5 caught_up=yes"}
                            <= set(sink.titles()), 3), sink.titles()
            sim.rest.faults.clear()
            assert wait_for(lambda: "fill main NIGHTUSDM r-n1 5 caught_up=yes"
                            in sink.titles(), 5)
        finally:
            agent.stop(timeout=5)
    assert sim.contract_violations == []


def test_old_list_statuses_are_served_in_the_contract_s_enum(sim):
    sim.push_deltadefi(API_KEY, order("a1", status="partially_filled"))
    frames = catch_up(sim).frames(Http(), T0 - 60)
    assert [f["order"]["status"] for f in frames[1:]] == ["open"]
