"""DeltaDeFi over REST, per trading pair, as `contracts/deltadefi/` states the API.

`/accounts/open-orders` and `/accounts/trade-orders` require `symbol`, so the catch-up asks
`/app/market-config` for the trading pairs (cached, refreshed daily) and then each pair, paged
(`page`, `limit` up to 250, replies `{data, total_count, total_page}`) in no promised order.
An order listed with an executed quantity but no execution records is asked for by id, under
either published path. Each call that fails costs only its own part: what the others fetched
is handed on in a PartialCatchUp.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from itertools import pairwise
from typing import Any
from urllib.parse import quote

from alertd.common.redact import safe_text
from alertd.domain.account import Account
from alertd.domain.observations import epoch
from alertd.exchanges.common import MAX_FILLS, Budget, PartialCatchUp
from alertd.exchanges.deltadefi import assets
from alertd.exchanges.deltadefi.account import rest_base
from alertd.exchanges.deltadefi.normalise import dd_order_id
from alertd.transport.http import Http, RestError

log = logging.getLogger("alertd.catch_up")

BALANCE = "/accounts/balance"
MARKET_CONFIG = "/app/market-config"
OPEN_ORDERS = "/accounts/open-orders"
TRADE_ORDERS = "/accounts/trade-orders"
ORDER_PATHS = ("/accounts/order/{id}", "/account/order")
"""The SDKs' path first (what the python-sdk, typescript-sdk and hummingbot call), then the
docs' (`?id=`); see contracts/deltadefi/get-account-order.json."""

LIMIT = 250
"""Rows per page: the most the SDKs allow (1-250)."""
MAX_PAGE = 1000
"""The highest page number the SDKs allow (1-1000)."""
LIST_PAGES = 4
"""Pages read of one list (one pair's open or trade orders): 1000 rows, as many as MAX_FILLS."""
CALL_PAGES = 64
"""Pages read in one catch-up, all pairs and lists together, so that a server announcing
endless pages or pairs cannot keep it asking."""
DETAILS = 20
"""Orders asked for one by one in one catch-up."""
PAIRS_TTL = 24 * 3600.0
"""How long the trading pairs from /app/market-config are used before they are asked again."""
MAX_SYMBOL = 40


class _Stop(RestError):
    """The catch-up's time or page bound is spent: no further call is made."""


class DeltaDefiCatchUp:
    """The account as DeltaDeFi's REST API states it, as the frames its stream would send.

    It lives as long as the account's stream, so the trading pairs it learnt and the order
    path that answered are kept between catch-ups; `clock` (monotonic seconds) ages them."""

    def __init__(self, account: Account, clock: Callable[[], float] = time.monotonic) -> None:
        self.base = rest_base(account)
        self._headers = {"X-API-KEY": account.api_key or ""}
        self._clock = clock
        self.pairs: tuple[str, ...] = ()
        self.pairs_at: float | None = None
        self._order_paths = list(ORDER_PATHS)

    def frames(self, http: Http, since: float) -> list[dict[str, Any]]:
        """Balances, open orders and the trade orders since `since`, per pair; raises
        PartialCatchUp (or RestError, when nothing came) if any call failed."""
        run = _Run(http, self.base, self._headers, Budget())
        balance: list[dict[str, Any]] = []
        orders: dict[str, dict[str, Any]] = {}
        run.attempt("balances", lambda: balance.append(
            {"type": "Account", "sub_type": "balance", "balance": balances(run.get(BALANCE))}))
        pairs = run.attempt("trading pairs", lambda: self._trading_pairs(run)) or ()
        history: list[dict[str, Any]] = []
        for symbol in pairs:
            pair = safe_text(symbol, MAX_SYMBOL)
            for row in run.attempt(f"open orders of {pair}", lambda s=symbol: run.pages(
                    OPEN_ORDERS, s, None)) or ():
                _merge(orders, row)
            history += run.attempt(f"trade orders of {pair}", lambda s=symbol: run.pages(
                TRADE_ORDERS, s, since)) or ()
        for row in _newest_fills(history, since):
            _merge(orders, row)
        self._details(run, orders)
        ordered = sorted(orders.values(), key=lambda o: _when(o) or 0.0)
        frames = balance + [{"type": "Account", "sub_type": "order_info", "order": o}
                            for o in ordered]
        if run.errors:
            shown = "; ".join(run.errors[:3]) + ("; ..." if len(run.errors) > 3 else "")
            message = (f"{len(run.errors)} part(s) of the DeltaDeFi catch-up failed "
                       f"({run.calls} calls made): {shown}")
            if frames:
                raise PartialCatchUp(message, frames)
            raise RestError(message)
        return frames

    def _trading_pairs(self, run: _Run) -> tuple[str, ...]:
        """The pairs from /app/market-config, asked at most daily; if asking fails, the pairs
        known from before are used (and asked for again next time)."""
        now = self._clock()
        if self.pairs_at is not None and now - self.pairs_at < PAIRS_TTL:
            return self.pairs
        try:
            config = run.get(MARKET_CONFIG, auth=False)
            pairs = trading_pairs(config)
            assets.learn(config)
        except _Stop:
            raise
        except RestError as exc:
            if not self.pairs:
                raise
            log.warning("DeltaDeFi trading pairs not refreshed, using the %d known: %s",
                        len(self.pairs), exc)
            return self.pairs
        self.pairs, self.pairs_at = pairs, now
        return pairs

    def _details(self, run: _Run, orders: dict[str, dict[str, Any]]) -> None:
        """Orders that executed but came without their records, asked for by id."""
        asked = 0
        for order_id, o in list(orders.items()):
            executed = str(o.get("executed_base_qty") or "0").strip().strip("0.")
            if not executed or o.get("order_execution_records") or asked >= DETAILS \
                    or order_id.startswith("?"):
                continue
            asked += 1
            full = run.attempt(f"order {safe_text(order_id, 40)}",
                               lambda i=order_id: self._order(run, i))
            if full is not None:
                orders[order_id] = full

    def _order(self, run: _Run, order_id: str) -> dict[str, Any]:
        """One order by id, trying each published path; the one that answers is tried first
        from then on."""
        first: RestError | None = None
        for path in list(self._order_paths):
            try:
                if "{id}" in path:
                    body = run.get(path.replace("{id}", quote(order_id, safe="")))
                else:
                    body = run.get(path, id=order_id)
                order = single_order(body)
            except _Stop:
                raise
            except RestError as exc:
                if unanswered(exc):
                    raise  # no answer at all: the other path would wait as long
                first = first or exc
                continue
            self._order_paths.remove(path)
            self._order_paths.insert(0, path)
            return order
        assert first is not None
        raise first


class _Run:
    """One catch-up's calls: bounded in time and pages, failures collected per part."""

    def __init__(self, http: Http, base: str, headers: dict[str, str], budget: Budget) -> None:
        self.http, self.base, self.headers, self.budget = http, base, headers, budget
        self.pages_left = CALL_PAGES
        self.calls = 0
        self.errors: list[str] = []
        self.stopped = False

    def get(self, path: str, auth: bool = True, **params: Any) -> Any:
        """One call, within the bounds; the key header only where the contract asks for it
        (market-config is public, so the key is not sent there)."""
        if self.stopped:
            raise _Stop("stopped")
        try:
            self.budget.check()
        except RestError as exc:
            raise _Stop(str(exc)) from None
        self.calls += 1
        return checked(self.http.get(self.base + path, params=params or None,
                                     headers=self.headers if auth else None))

    def attempt(self, what: str, call: Callable[[], Any]) -> Any:
        """The call's result, or None after noting why it failed; once the bounds are spent
        nothing more is tried, and that is noted once."""
        if self.stopped:
            return None
        try:
            return call()
        except RestError as exc:
            self.stopped = isinstance(exc, _Stop) or unanswered(exc)
            self.errors.append(f"{what}: {exc}" + ("; the rest was not asked"
                                                   if self.stopped else ""))
        return None

    def pages(self, path: str, symbol: str, since: float | None) -> list[dict[str, Any]]:
        """One pair's list, page by page, whatever order the rows come in.

        With `since`, rows older than it are not needed: reading stops at a page wholly older
        in the direction the rows run. Rows oldest first over more pages than LIST_PAGES are
        read from the last page back, so the newest are read first."""
        def page(n: int) -> list[dict[str, Any]]:
            """Page `n`'s rows, counted against the catch-up's page bound."""
            if self.pages_left <= 0:
                raise _Stop(f"more than {CALL_PAGES} pages in one catch-up")
            self.pages_left -= 1
            rows, total[0] = paged(self.get(path, symbol=symbol, page=n, limit=LIMIT))
            return rows

        total: list[int | None] = [None]
        rows = page(1)
        out = list(rows)
        last = min(max(total[0], 1), MAX_PAGE) if total[0] is not None else MAX_PAGE
        if last == 1 or not rows or (total[0] is None and len(rows) < LIMIT):
            return out
        order = direction(rows)
        if since is not None and order == "newest" and _all_older(rows, since):
            return out
        backwards = since is not None and order == "oldest" and total[0] is not None \
            and last > LIST_PAGES
        plan: Iterable[int] = range(last, 1, -1) if backwards else range(2, last + 1)
        read = 1
        for n in plan:
            if read >= LIST_PAGES:
                break
            batch = page(n)
            read += 1
            out += batch
            if not batch or (total[0] is None and len(batch) < LIMIT):
                break
            if since is not None and _all_older(batch, since) and \
                    order == ("oldest" if backwards else "newest"):
                break
        return out


_UNANSWERED = re.compile(r": (no whole reply within .*|stopping|\w+(Error|Timeout))$")


def unanswered(exc: RestError) -> bool:
    """Whether the call got no answer at all (a timeout, a refused or cut connection, the
    stop), as `transport/http.py` words it: the next call would wait as long for nothing, so
    none is made. An answer that was an error (HTTP 500, an error body) costs its part only."""
    text = str(exc)
    return ": HTTP " not in text and bool(_UNANSWERED.search(text))


def checked(body: Any) -> Any:
    """The body, unless it is DeltaDeFi's error (`{code, error}`), whatever the HTTP status."""
    if isinstance(body, dict) and "data" not in body:
        message = body.get("error") or body.get("msg")
        code = body.get("code")
        if message or (code not in (None, 0, 200) and not isinstance(code, bool)
                       and "id" not in body and "assets" not in body):
            raise RestError(f"DeltaDeFi answered code {safe_text(str(code), 12)}: "
                            f"{safe_text(str(message or '-'), 120)}")
    return body


def balances(body: Any) -> list[Any]:
    """The balance rows: a bare list as published (`data`/`balances` wrappers read too);
    anything else is an error, never 'no balances'."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in ("data", "balances"):
            if isinstance(body.get(key), list):
                return body[key]
    raise RestError(f"GET {BALANCE}: the reply is not a list of balances")


def trading_pairs(body: Any) -> tuple[str, ...]:
    """The symbols of `trading_pairs` in a market-config reply, each once."""
    rows = body.get("trading_pairs") if isinstance(body, dict) else None
    if not isinstance(rows, list):
        raise RestError(f"GET {MARKET_CONFIG}: the reply has no trading_pairs list")
    symbols = dict.fromkeys(r["symbol"] for r in rows if isinstance(r, dict)
                            and isinstance(r.get("symbol"), str)
                            and 0 < len(r["symbol"]) <= MAX_SYMBOL)
    if not symbols:
        raise RestError(f"GET {MARKET_CONFIG}: no trading pairs listed")
    return tuple(symbols)


def paged(body: Any) -> tuple[list[dict[str, Any]], int | None]:
    """A page's rows and `total_page` (None when not told): the published wrapper, or a bare
    list as the python-sdk types it; rows that are not objects are left out."""
    total = None
    if isinstance(body, list):
        rows: Any = body
    elif isinstance(body, dict):
        rows = body.get("data", body.get("orders"))
        rows = [] if rows is None else rows
        pages = body.get("total_page")
        if isinstance(pages, int) and not isinstance(pages, bool) and pages >= 0:
            total = pages
    else:
        rows = None
    if not isinstance(rows, list):
        raise RestError("the reply is not a page of rows")
    return [r for r in rows if isinstance(r, dict)], total


def single_order(body: Any) -> dict[str, Any]:
    """The order in a by-id reply: published unwrapped; `{order: ...}` read too."""
    order = body.get("order") if isinstance(body, dict) and isinstance(
        body.get("order"), dict) else body
    if not isinstance(order, dict) or (order.get("id") is None and order.get("order_id") is None):
        raise RestError("the reply is not an order")
    return order


def direction(rows: list[dict[str, Any]]) -> str | None:
    """"oldest" or "newest" if the rows run that way first by creation or update time, or
    None when they tell nothing (one row, equal or mixed times)."""
    for key in ("created_at", "updated_at"):
        times = [t for t in (_time(r.get(key)) for r in rows) if t is not None]
        if len(times) < 2 or times[0] == times[-1]:
            continue
        if all(a <= b for a, b in pairwise(times)):
            return "oldest"
        if all(a >= b for a, b in pairwise(times)):
            return "newest"
    return None


def _all_older(rows: list[dict[str, Any]], since: float) -> bool:
    """Whether a page holds nothing of the window (an undated row counts as inside)."""
    return all((_when(r) or since) < since for r in rows)


def _newest_fills(rows: list[dict[str, Any]], since: float) -> list[dict[str, Any]]:
    """The trade orders of the window (undated ones too), newest first, until MAX_FILLS
    execution records are reached."""
    recent = sorted((r for r in rows if (_when(r) or since) >= since),
                    key=lambda r: _when(r) or since, reverse=True)
    out, fills = [], 0
    for row in recent:
        if fills >= MAX_FILLS:
            break
        out.append(row)
        records = row.get("order_execution_records")
        fills += len(records) if isinstance(records, list) else 0
    return out


def _merge(orders: dict[str, dict[str, Any]], row: dict[str, Any]) -> None:
    """Keep the later statement of an order (by time, then by more records)."""
    try:
        key = dd_order_id(row)
    except KeyError:
        key = f"?{len(orders)}"  # no id: the schema will say so, as for a live frame
    old = orders.get(key)
    if old is None or _rank(row) >= _rank(old):
        orders[key] = row


def _rank(o: dict[str, Any]) -> tuple[float, int]:
    """Which statement of an order is later: the open list and the trade list may differ."""
    records = o.get("order_execution_records")
    return _when(o) or 0.0, len(records) if isinstance(records, list) else 0


def _when(order: dict[str, Any]) -> float | None:
    """When the order last changed, as the window is judged by it."""
    return _time(order.get("updated_at")) or _time(order.get("created_at"))


def _time(value: Any) -> float | None:
    """A row's time in epoch seconds; one out of any calendar is no time (a hostile row must
    not end the catch-up with an OverflowError)."""
    try:
        return epoch(value)
    except (OverflowError, ValueError, OSError):
        return None
