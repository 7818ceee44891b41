"""The HTTP client adapter (requests): the only module that imports it.

REST replies are bounded in size and time, parsed straight to bounded Decimals, and every error is
turned into a `RestError` whose text names no URL query and no key. The time bound is for the
whole call: requests' own timeout is per read, which a server dripping bytes never trips.
Redirects are followed only within the origin called: requests strips `Authorization` on a
cross-host redirect but not an exchange's own key header (`X-API-KEY`).

requests and urllib3 are imported by the first `Http`, not with this module: the exchanges
subclass `RestError` and name `Http`, and `alertd check` (which calls nothing) must not pay for
them (~0.1 s and 15 MB).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.utils
import functools
import json
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from alertd.common.redact import redact_url, safe_text
from alertd.domain.observations import AmountError, parse_amount, parse_constant, parse_whole

if TYPE_CHECKING:
    import requests

MAX_REPLY = 8 << 20
MAX_REDIRECTS = 3
_decoder = json.JSONDecoder(parse_float=parse_amount, parse_int=parse_whole,
                            parse_constant=parse_constant)


class RestError(Exception):
    """A REST call failed; the message is safe to log and to put in an alert. `status` is the
    HTTP status if one came; `retry_after` the seconds the server asked us to wait."""

    def __init__(self, message: str, status: int | None = None,
                 retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status, self.retry_after = status, retry_after


REQUESTS_PER_SECOND = 10.0
"""Requests started per second to one host, across every account of this process. Neither
exchange publishes a number: SoDEX's SDKs list 429 among the errors (`contracts/sodex/`),
DeltaDeFi's status codes name 4290 "Rate limit exceeded" (`contracts/deltadefi/`), and the
DeltaDeFi Hummingbot connector (deltadefi-protocol/hummingbot@8058a71,
hummingbot/connector/exchange/deltadefi/deltadefi_constants.py, RATE_LIMITS) throttles each
list path at 20 per 2 s and /accounts/balance at 10 per 2 s; 10/s for every path together
stays inside all of them, and a desk of 200 accounts reconnecting after a network blip must
not go over. (The same list holds WebSocket connects to 3 per second, which alertd does not
pace yet.)"""
LONGEST_RETRY_AFTER = 3600.0


class Pacer:
    """Spaces the requests to each host, process-wide, and holds a host back for as long as
    its `Retry-After` said (every account waits, not only the one that was told)."""

    def __init__(self, per_second: float = REQUESTS_PER_SECOND,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.interval, self.clock = 1.0 / per_second, clock
        self._next: dict[str, float] = {}
        self._held: dict[str, float] = {}
        self._lock = threading.Lock()

    def slot(self, host: str, within: float = float("inf")) -> tuple[float, bool]:
        """When the next request to `host` may start (now or later), and whether the host
        itself holds us back (`Retry-After`) rather than our own pace. The slot is taken only
        if it is `within` seconds: a call refused for waiting too long books nothing, else a
        storm of refused calls (200 accounts reconnecting) pushes every later slot away."""
        with self._lock:
            now = self.clock()
            held = self._held.get(host, 0.0) > now
            at = max(now, self._next.get(host, now))
            if at - now <= within:
                self._next[host] = at + self.interval
            return at, held

    def hold(self, host: str, seconds: float) -> None:
        with self._lock:
            until = self.clock() + seconds
            self._held[host] = max(self._held.get(host, 0.0), until)
            self._next[host] = max(self._next.get(host, 0.0), until)

    def held(self, host: str) -> bool:
        """Whether the host still holds us back (`Retry-After`): no catch-up begins then."""
        with self._lock:
            return self._held.get(host, 0.0) > self.clock()


PACER = Pacer()


@functools.cache
def _sockets_adapter() -> type[Any]:
    """The requests adapter class, built on first use so that importing this module imports
    neither requests nor urllib3."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class _Sockets(HTTPAdapter):
        """Keeps the session's sockets, so that a call past its deadline can be cut off."""

        def __init__(self) -> None:
            self.open: set[socket.socket] = set()
            self.stopped = False
            super().__init__()

        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            track = self.track

            class Plain(HTTPConnection):
                def connect(self) -> None:
                    super().connect()
                    track(self.sock)

            class Secure(HTTPSConnection):
                def connect(self) -> None:
                    super().connect()
                    track(self.sock)

            self.poolmanager.pool_classes_by_scheme = {
                "http": type("Pool", (HTTPConnectionPool,), {"ConnectionCls": Plain}),
                "https": type("SecurePool", (HTTPSConnectionPool,), {"ConnectionCls": Secure})}

        def track(self, sock: socket.socket) -> None:
            """Keep a new socket, forgetting the ones closed since (a keep-alive session makes a
            new one after every close, and holding them all was a slow leak)."""
            self.open = {s for s in self.open if s.fileno() != -1}
            self.open.add(sock)
            if self.stopped:  # the stop came while this socket was connecting
                self.cut()

        def cut(self) -> None:
            for sock in list(self.open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            self.open.clear()

    return _Sockets


class Http:
    """One keep-alive session per account; `get` returns the parsed JSON body."""

    def __init__(self, timeout: float = 10.0, pacer: Pacer = PACER) -> None:
        import requests

        self.timeout, self.pacer = timeout, pacer
        self._cancelled = False
        self._cancel = threading.Event()
        self._session: requests.Session = requests.Session()
        self._sockets = _sockets_adapter()()
        self._session.mount("http://", self._sockets)
        self._session.mount("https://", self._sockets)

    def get(self, url: str, params: dict[str, Any] | None = None,
            headers: dict[str, str] | None = None) -> Any:
        where = redact_url(url)
        status, retry, body = self._call("GET", url, params, headers, None, where)
        host = origin(url)
        if len(body) > MAX_REPLY:
            raise RestError(f"GET {where}: reply larger than {MAX_REPLY >> 20} MiB")
        if status >= 400:
            after = _retry_after(retry) if status == 429 or (status == 503 and retry) else None
            if after is not None:
                self.pacer.hold(host, after)
            raise RestError(f"GET {where}: HTTP {status} "
                            f"{safe_text(body[:200].decode('utf-8', 'replace'), 120)}",
                            status=status, retry_after=after)
        try:
            return _decoder.decode(body.decode("utf-8"))
        except AmountError as exc:
            raise RestError(f"GET {where}: {exc}") from None
        except (ValueError, RecursionError):
            raise RestError(f"GET {where}: the reply is not JSON") from None

    def ping(self, url: str, body: str | None = None, where: str | None = None) -> int:
        """GET `url`, or POST `body` to it as text; the HTTP status (for a push check, which
        reads no reply). Bounded like `get`; errors name `where` (a push URL's path is its
        secret, so the caller says what to show)."""
        method = "GET" if body is None else "POST"
        data = None if body is None else body.encode("utf-8")[:10_000]
        status, _, _ = self._call(method, url, None, None, data, where or redact_url(url))
        return status

    def _call(self, method: str, url: str, params: dict[str, Any] | None,
              headers: dict[str, str] | None, data: bytes | None,
              where: str) -> tuple[int, str | None, bytes]:
        """One call, paced per host, its redirects followed within the origin, cut off at
        the deadline for the whole call: (status, Retry-After, body up to the bound)."""
        import requests
        from urllib3.exceptions import HTTPError

        if self._cancelled:
            raise RestError(f"{method} {where}: stopping")
        at, held = self.pacer.slot(origin(url), within=self.timeout)
        wait = at - self.pacer.clock()
        if wait > self.timeout and held:
            raise RestError(f"{method} {where}: the host asked us to wait; not before "
                            f"{wait:.0f} s from now", retry_after=wait)
        if wait > self.timeout:  # our own pace: retried at the usual delay, not after `wait`
            raise RestError(f"{method} {where}: busy: requests to this host are paced at "
                            f"{1 / self.pacer.interval:g}/s across all accounts and this "
                            f"one would wait {wait:.0f} s")
        if wait > 0 and self._cancel.wait(wait):
            raise RestError(f"{method} {where}: stopping")
        expired = threading.Event()

        def cut_late() -> None:
            expired.set()
            self._sockets.cut()

        late = threading.Timer(self.timeout, cut_late)
        late.daemon = True
        late.start()
        try:
            for _ in range(MAX_REDIRECTS + 1):
                with self._session.request(method, url, params=params, headers=headers,
                                           data=data, timeout=self.timeout, stream=True,
                                           allow_redirects=False) as reply:
                    status = reply.status_code
                    retry = reply.headers.get("Retry-After")
                    moved = reply.headers.get("Location") if reply.is_redirect else None
                    body = b"" if moved else reply.raw.read(MAX_REPLY + 1, decode_content=True)
                if not moved:
                    return status, retry, body
                url, params = _same_origin(url, moved, f"{method} {where}"), None
            raise RestError(f"{method} {where}: more than {MAX_REDIRECTS} redirects")
        except (requests.RequestException, HTTPError, OSError) as exc:
            if expired.is_set():
                raise RestError(f"{method} {where}: no whole reply within {self.timeout:g} s") \
                    from None
            raise RestError(f"{method} {where}: {type(exc).__name__}") from None
        finally:
            late.cancel()

    def cancel(self) -> None:
        """Cut the call in flight, and refuse new ones: alertd is stopping, and a slow REST
        server must not hold the stop up to the call's deadline."""
        self._cancelled = True
        self._cancel.set()
        self._sockets.stopped = True
        self._sockets.cut()

    def close(self) -> None:
        self._session.close()


def _same_origin(url: str, location: str, where: str) -> str:
    """Where a redirect leads, if it stays on the origin called; a redirect elsewhere is an
    error, so the key header never reaches another host."""
    target = urljoin(url, location)
    here, there = urlsplit(url), urlsplit(target)
    if (here.scheme, here.hostname, here.port) != (there.scheme, there.hostname, there.port):
        raise RestError(f"{where}: redirected to another host "
                        f"({safe_text(there.scheme, 10)}://{safe_text(there.hostname, 80)}); "
                        "not followed, so the API key stays with the configured host")
    return target


def origin(url: str) -> str:
    """What the pacer and the line know a host by: scheme, host and port."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}:{parts.port or ''}"


def _retry_after(value: str | None) -> float | None:
    """`Retry-After` as seconds from now (a number, or an HTTP date), at most an hour; a
    429 without one still holds the host a second, so a storm of calls cannot follow it."""
    if value is None:
        return 1.0
    text = value.strip()
    if text.isdigit():
        return min(float(text), LONGEST_RETRY_AFTER)
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return 1.0
    if when.tzinfo is None:
        return 1.0
    return max(0.0, min((when - dt.datetime.now(dt.UTC)).total_seconds(), LONGEST_RETRY_AFTER))
