"""The heartbeat to an outside dead man's switch (healthchecks.io, Uptime Kuma, any push URL).

alertd's own alerts cannot say that alertd's machine died; a switch that expects a ping every
interval can. The ping is sent only while alertd is healthy, by the same test that gates the
systemd watchdog plus a writable state file, so a wedged alertd goes quiet exactly like a dead
one. It runs on its own thread with a bounded call, so a slow switch never holds the core.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from alertd.common.redact import safe_text
from alertd.transport.http import Http, RestError

log = logging.getLogger("alertd")

LOG_AGAIN_AFTER = 3600.0
"""While the switch stays unreachable, its failure is logged again this often (not per ping)."""


@dataclass(frozen=True)
class Ping:
    """One call to the switch: the URL, and the text to POST (None: a GET)."""

    url: str
    body: str | None = None


def pings_for(url: str) -> tuple[Callable[[], Ping], Callable[[], Ping], Callable[[str], Ping]]:
    """(start, ok, fail) calls for a push URL, in the switch's own conventions.

    Uptime Kuma's push URL (`/api/push/<token>`) takes `status=up|down&msg=...`; anything else
    follows healthchecks.io's: `<url>/start`, `<url>`, and `<url>/fail` with the reason as body,
    which is also what a plain endpoint that only counts requests understands.
    """
    parts = urlsplit(url)
    if "/api/push/" in parts.path:
        def kuma(status: str, msg: str) -> Ping:
            query = dict(parse_qsl(parts.query))
            query.update(status=status, msg=msg)
            return Ping(urlunsplit(parts._replace(query=urlencode(query))))

        return (lambda: kuma("up", "started"), lambda: kuma("up", "OK"),
                lambda reason: kuma("down", reason[:200]))

    def suffixed(suffix: str) -> str:
        return urlunsplit(parts._replace(path=parts.path.rstrip("/") + suffix))

    return (lambda: Ping(suffixed("/start")), lambda: Ping(url),
            lambda reason: Ping(suffixed("/fail"), reason))


class Heartbeat:
    """Pings `url` every `every` seconds while `problem()` is None, else reports the problem.

    `problem` answers from what the agent's loops last did, without blocking; a ping that
    fails is logged once (and again hourly while it keeps failing), never alerted, since the
    switch itself alerts when the pings stop.
    """

    def __init__(self, url: str, every: float, problem: Callable[[], str | None], *,
                 http: Http | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.every, self.problem, self._clock = every, problem, clock
        self._start, self._ok, self._fail = pings_for(url)
        self._where = _where(url)
        self._http = http or Http(timeout=min(10.0, max(1.0, every / 2)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="heartbeat", daemon=True)
        self.sent = 0
        self.failures = 0
        self._failing_since: float | None = None
        self._logged_at = 0.0

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        self._stop.set()
        self._http.cancel()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        self._call(self._start())
        while not self._stop.wait(self.every):
            self.beat()

    def beat(self) -> None:
        """One interval: the ping if healthy, else the failure with its reason."""
        try:
            problem = self.problem()
        except Exception:
            log.exception("heartbeat: the health check itself failed; no ping this interval")
            return
        self._call(self._ok() if problem is None else self._fail(problem))

    def _call(self, ping: Ping) -> None:
        try:
            status = self._http.ping(ping.url, ping.body, where=self._where)
            error = None if status < 400 else f"HTTP {status}"
        except RestError as exc:
            error = safe_text(str(exc), 200)
        if self._stop.is_set():
            return
        now = self._clock()
        if error is None:
            self.sent += 1
            if self._failing_since is not None:
                log.info("heartbeat to %s works again after %d failed pings", self._where,
                         self.failures)
            self._failing_since, self.failures = None, 0
            return
        self.failures += 1
        if self._failing_since is None or now - self._logged_at >= LOG_AGAIN_AFTER:
            self._failing_since = self._failing_since or now
            self._logged_at = now
            log.warning("heartbeat to %s failed (%s); %d failed pings so far, trying again "
                        "every %g s", self._where, error, self.failures, self.every)


def _where(url: str) -> str:
    """The switch's scheme and host only: a push URL's path or query is its secret."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"
