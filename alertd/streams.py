"""One thread per socket: connect, subscribe, read, and heal.

Backoff doubles from 1 s to 60 s with jitter and resets only after a connection stayed up
30 s; a refused handshake (401/403) or subscription waits minutes, not seconds. A socket that
is silent past `idle_timeout` (pings unanswered) is replaced. The account is reported
`disconnected` only once it has been unreachable for `down_after`, so brief blips stay quiet.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from alertd import wsclient
from alertd.core import Core
from alertd.decode import Drop, decode
from alertd.exchanges import WINDOW, CatchUp, StreamProtocol, SubscriptionRefused
from alertd.http import Http, RestError

log = logging.getLogger("alertd.stream")


@dataclass(frozen=True)
class StreamSettings:
    connect_timeout: float = 10.0
    ping_every: float = 20.0
    idle_timeout: float = 75.0
    ack_timeout: float = 10.0
    backoff_first: float = 1.0
    backoff_max: float = 60.0
    stable_after: float = 30.0
    refused_backoff: float = 300.0
    down_after: float = 120.0
    tick: float = 1.0
    catch_up_retry: float = 30.0


Connect = Callable[..., wsclient.Connection]


class Stream:
    """Keeps one account's socket on one market alive and hands its frames to the core."""

    def __init__(self, protocol: StreamProtocol, core: Core, settings: StreamSettings, *,
                 connect: Connect = wsclient.connect, rng: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.monotonic,
                 catch_up: CatchUp | None = None) -> None:
        self.protocol, self.core, self.settings = protocol, core, settings
        self.catch_up = catch_up
        self._http = Http(timeout=min(10.0, settings.connect_timeout)) if catch_up else None
        self._catch_up_due: float | None = None
        self._catch_up_failed = False
        self._connect, self._rng, self._clock = connect, rng, clock
        self.source = protocol.source
        self.connects = 0
        self.state = "starting"
        self.last_frame_wall: float | None = None
        self.heartbeat = clock()
        self._stopping = threading.Event()
        self._conn: wsclient.Connection | None = None
        self._down_reported = False
        self._last_error = "not connected yet"
        self._thread = threading.Thread(target=self._guarded, name=f"stream-{self.source.key}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        conn = self._conn
        if conn is not None:
            conn.abort()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def backoff(self, failures: int) -> float:
        s = self.settings
        return min(s.backoff_max, s.backoff_first * 2 ** failures) * (0.5 + self._rng())

    def _guarded(self) -> None:
        """A bug in the loop must not end the stream for good: log it and start over."""
        while not self._stopping.is_set():
            try:
                self._run()
            except Exception:
                log.exception("%s: stream loop failed; starting it again in 5 s",
                              self.source.key)
                if self._conn is not None:
                    self._conn.abort()
                    self._conn = None
                self._stopping.wait(5)
        self.state = "stopped"
        if self._http is not None:
            self._http.close()

    def _run(self) -> None:
        failures = 0
        down_since = self._clock()
        name = self.source.key
        while not self._stopping.is_set():
            self.state = "connecting"
            self.heartbeat = self._clock()
            try:
                if self.catch_up is not None and (self._catch_up_due is None
                                                  or self._clock() >= self._catch_up_due):
                    self._run_catch_up()
                conn = self._connect(self.protocol.url, self.settings.connect_timeout,
                                     self._stopping)
            except wsclient.HandshakeRejected as exc:
                if exc.status in (401, 403):
                    self._refused(self.protocol.refused_reason(exc.status), down_since)
                    continue
                self._last_error = str(exc)
            except wsclient.TransportError as exc:
                self._last_error = str(exc)
            else:
                up_at = self._clock()
                self._conn = conn
                self.connects += 1
                try:
                    reason, answered = self._session(conn)
                except SubscriptionRefused as exc:
                    conn.abort()
                    self._refused(str(exc), self._clock())
                    continue
                finally:
                    self._conn = None
                conn.abort()
                if self._stopping.is_set():
                    break
                if self.core.stalled is not None:
                    self._pause()
                    continue
                if self._clock() - up_at >= self.settings.stable_after:
                    failures = 0
                if answered:  # a socket that never answered was never up
                    down_since = self._clock()
                self._last_error = reason
            delay = self.backoff(failures)
            failures += 1
            self.state = "reconnecting"
            log.warning("%s: %s; reconnecting in %.1f s", name, self._last_error, delay)
            self._wait(delay, down_since)
        self.state = "stopped"
        log.info("%s: stopped", name)

    def _run_catch_up(self) -> None:
        """Ask the REST API what the socket does not say; a failure is reported once and
        tried again every `catch_up_retry`, never fatal.

        It runs before each connect, so that every live frame read afterwards is newer than
        the baseline it sets; only a catch-up that failed is retried with the socket up.
        """
        assert self.catch_up is not None and self._http is not None
        src = self.source
        started = time.time()
        try:
            frames = self.catch_up.frames(self._http, started - WINDOW)
        except RestError as exc:
            self._catch_up_due = self._clock() + self.settings.catch_up_retry
            log.warning("%s: catch-up over REST failed, retrying in %.0f s: %s", src.key,
                        self.settings.catch_up_retry, exc)
            if not self._catch_up_failed:
                self._catch_up_failed = True
                self.core.stream_status(src, "catch_up_failed", (
                    f"{src.exchange} account {src.account} ({src.market}): cannot fetch what "
                    f"was missed while disconnected: {exc}; retrying"))
            return
        self._catch_up_due = None
        if frames:
            self.core.submit(self.core.pipeline.catch_up, src, frames, started)
        if self._catch_up_failed:
            self._catch_up_failed = False
            self.core.stream_status(src, "connected", "caught up over REST")
        log.info("%s: caught up over REST (%d frames)", src.key, len(frames))

    def _pause(self) -> None:
        """Read nothing while the state cannot be written (what is read could not be kept);
        the catch-up before the next connect fetches what the exchange said meanwhile."""
        self.state = "paused"
        log.error("%s: paused: the state file cannot be written", self.source.key)
        while self.core.stalled is not None and not self._stopping.is_set():
            self.heartbeat = self._clock()
            self._stopping.wait(self.settings.tick)
        self._catch_up_due = None

    def _refused(self, reason: str, down_since: float) -> None:
        delay = self.settings.refused_backoff * (0.75 + self._rng() / 2)
        self._last_error = reason
        self.state = "rejected"
        log.error("%s: %s; trying again in %.0f s", self.source.key, reason, delay)
        self.core.stream_status(self.source, "rejected", reason)
        self._down_reported = True
        self._wait(delay, down_since)

    def _wait(self, delay: float, down_since: float) -> None:
        """Sleep before the next attempt, reporting the account down once it has been long."""
        deadline = self._clock() + delay
        while not self._stopping.is_set():
            now = self.heartbeat = self._clock()
            if not self._down_reported and now - down_since >= self.settings.down_after:
                self._down_reported = True
                reason = (f"{self.source.exchange} account {self.source.account} "
                          f"({self.source.market}) unreachable for {now - down_since:.0f} s: "
                          f"{self._last_error}")
                log.error("%s: %s", self.source.key, reason)
                self.core.stream_status(self.source, "disconnected", reason)
            if now >= deadline:
                return
            self._stopping.wait(min(self.settings.tick, deadline - now))

    def _session(self, conn: wsclient.Connection) -> tuple[str, bool]:
        """Read until the socket breaks; returns why it ended and whether it ever answered.

        A socket counts as up only once something came back (SoDEX acks; for DeltaDeFi the
        pong to the ping sent at once), so a server that accepts and then says nothing is
        neither announced nor allowed to hide that the account is unreachable.
        """
        s, protocol, src = self.settings, self.protocol, self.source
        try:
            for message in protocol.opening():
                conn.send(message)
            if not protocol.app_ping:
                conn.ping()
        except wsclient.TransportError as exc:
            return f"disconnected ({exc})", False
        opened = last_frame = last_sent = self._clock()
        announced = answered = False
        while not self._stopping.is_set():
            if not announced and answered and protocol.ready():
                announced = True
                self.state = "connected"
                log.info("%s: connected to %s", src.key, protocol.url)
                if self._down_reported:
                    log.info("%s: back after being reported down", src.key)
                self._down_reported = False
                self.core.stream_status(src, "connected", f"connected to {protocol.url}")
            if self.core.stalled is not None:
                return "paused: the state file cannot be written", answered
            if self._catch_up_due is not None and self._clock() >= self._catch_up_due:
                self._run_catch_up()
                last_frame = self._clock()
            if not announced and self._clock() - opened > s.ack_timeout:
                return f"no answer within {s.ack_timeout:.0f} s of connecting", answered
            try:
                raw = conn.recv(s.tick)
            except wsclient.Refused as exc:
                self.core.drop(src, Drop(exc.reason, str(exc)))
                return f"disconnected ({exc})", answered
            except wsclient.TransportError as exc:
                return f"disconnected ({exc})", answered
            now = self.heartbeat = self._clock()
            if raw is None:
                if now - last_frame >= s.idle_timeout:
                    return f"no frame for {now - last_frame:.0f} s", answered
                if now - max(last_frame, last_sent) >= s.ping_every:
                    last_sent = now
                    message = protocol.idle_message()
                    try:
                        if message:
                            conn.send(message)
                        else:
                            conn.ping()
                    except wsclient.TransportError as exc:
                        return f"disconnected ({exc})", answered
                continue
            answered = True
            last_frame = now
            self.last_frame_wall = time.time()
            if not raw:
                continue
            try:
                frame = decode(raw)
            except Drop as drop:
                self.core.drop(src, drop)
                continue
            if not protocol.control(frame):
                self.core.frame(src, frame)
        return "stopping", answered
