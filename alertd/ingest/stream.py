"""One thread per socket: connect, subscribe, read, and heal; the I/O only.

What to do and when (backoff, pings, giving a silent socket up, reporting the account down or
back) is decided by the socket-free `Session` in `session.py`; this loop does the connecting,
sending, reading and waiting it asks for, and reports the `stream` events it decides.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any, Protocol

from alertd.domain.observations import Source
from alertd.exchanges import WINDOW, CatchUp, StreamProtocol, SubscriptionRefused
from alertd.exchanges.common import PartialCatchUp
from alertd.ingest.decode import Drop, decode
from alertd.ingest.session import Session, StreamSettings
from alertd.transport import wsclient
from alertd.transport.http import Http, RestError, origin
from alertd.transport.line import LINE, Line, Ticket

__all__ = ["Stream", "StreamSettings"]

log = logging.getLogger("alertd.stream")

RECONCILE_OVERLAP = 600.0
"""A reconciliation reads back this far before the last good catch-up: a record stamped a
little late (the exchange's clock, a slow commit on its side) is not missed."""

QUEUED_TICK = 0.25
"""How often a connected stream whose catch-up after a gap waits in line asks for its turn
(else every tick, 1 s: a reconciliation's turn may idle that long, and 400 streams waiting
for theirs do not wake 1,600 times a second)."""

Connect = Callable[..., wsclient.Connection]


class Core(Protocol):
    """What a stream hands its frames to (the runtime's core thread); ingest knows no more."""

    stalled: str | None

    def frame(self, src: Source, frame: dict[str, Any], more: bool = False) -> None: ...
    def drop(self, src: Source, drop: Drop) -> None: ...
    def stream_status(self, src: Source, status: str, reason: str) -> None: ...
    def catch_up(self, src: Source, frames: list[Any], started: float,
                 complete: bool = True) -> None: ...


class Stream:
    """Keeps one account's socket on one market alive and hands its frames to the core."""

    def __init__(self, protocol: StreamProtocol, core: Core, settings: StreamSettings, *,
                 connect: Connect = wsclient.connect, rng: Callable[[], float] = random.random,
                 clock: Callable[[], float] = time.monotonic,
                 catch_up: CatchUp | None = None, line: Line = LINE) -> None:
        self.protocol, self.core, self.settings = protocol, core, settings
        self.catch_up = catch_up
        self._line = line
        base = getattr(catch_up, "base", None)
        self._rest_host = origin(base if isinstance(base, str) else str(protocol.url))
        self._ticket: Ticket | None = None
        """This stream's place in its REST host's line, while a catch-up waits or runs."""
        self._http = Http(timeout=min(10.0, settings.connect_timeout)) if catch_up else None
        self._connect, self._clock = connect, clock
        self.source = src = protocol.source
        self.session = Session(f"{src.exchange} account {src.account} ({src.market})",
                               str(protocol.url), settings, clock=clock, rng=rng,
                               catch_up=catch_up is not None)
        self.connects = 0
        self.catch_ups = 0
        self.catch_up_failures = 0
        """REST catch-ups (and reconciliations) begun, and those that failed: for metrics."""
        self.last_frame_wall: float | None = None
        self.heartbeat = clock()
        self._stopping = threading.Event()
        self._conn: wsclient.Connection | None = None
        self._bugs_said: set[str] = set()
        """Kinds of unreadable catch-up reply already logged with their traceback."""
        self._good_since: float | None = None
        """When the last catch-up that succeeded began (wall clock, as the REST API's)."""
        self._thread = threading.Thread(target=self._guarded, name=f"stream-{src.key}",
                                        daemon=True)

    @property
    def state(self) -> str:
        """What `alertd status` shows: the session's state, or what was reported of it
        (`disconnected` once said down, `catch_up_failed` while a catch-up keeps failing,
        `catch_up_queued` while the catch-up after a gap waits for its turn in the REST line:
        waiting is not failing)."""
        session, ticket = self.session, self._ticket
        if session.down_reported and session.state not in ("connected", "rejected"):
            return "disconnected"
        if session.catch_up_failed and session.state == "connected":
            return "catch_up_failed"
        if ticket is not None and ticket.urgent and not ticket.running \
                and session.state in ("connecting", "subscribing", "connected"):
            return "catch_up_queued"
        if session.silent_since is not None and session.state == "connected":
            return "silent"
        return session.state

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        conn = self._conn
        if conn is not None:
            conn.abort()
        if self._http is not None:
            self._http.cancel()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

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
                self._leave_line()  # asked again, at the back, once the loop runs again
                self._stopping.wait(5)
        self._leave_line()
        self.session.state = "stopped"
        if self._http is not None:
            self._http.close()

    def _leave_line(self) -> None:
        ticket, self._ticket = self._ticket, None
        if ticket is not None:
            self._line.end(ticket)

    def _report(self) -> None:
        for status, reason in self.session.take_reports():
            if status == "disconnected":
                log.error("%s: %s", self.source.key, reason)
            self.core.stream_status(self.source, status, reason)

    def _run(self) -> None:
        session, name = self.session, self.source.key
        while not self._stopping.is_set():
            self.heartbeat = self._clock()
            try:
                if session.connecting():
                    self._catch_up_before_connect()
                    if self._stopping.is_set():
                        break
                conn = self._connect(self.protocol.url, self.settings.connect_timeout,
                                     self._stopping)
            except wsclient.HandshakeRejected as exc:
                if exc.status in (401, 403):
                    self._refused(self.protocol.refused_reason(exc.status))
                    continue
                delay = session.connect_failed(str(exc))
            except wsclient.TransportError as exc:
                delay = session.connect_failed(str(exc))
            else:
                self._conn = conn
                self.connects += 1
                session.opened()
                try:
                    reason = self._session(conn)
                except SubscriptionRefused as exc:
                    conn.abort()
                    self._refused(str(exc), just_now=True)
                    continue
                finally:
                    self._conn = None
                conn.abort()
                if self._stopping.is_set():
                    break
                if self.core.stalled is not None:
                    self._pause()
                    continue
                delay = session.ended(reason)
            log.warning("%s: %s; reconnecting in %.1f s", name, session.last_error, delay)
            self._wait(delay)
        session.state = "stopped"
        log.info("%s: stopped", name)

    def _ask(self, urgent: bool) -> Ticket:
        """This stream's place in its REST host's line (the one it holds, if it does)."""
        self._ticket = self._line.ask(self._rest_host, self.source.key, urgent)
        return self._ticket

    def _catch_up_before_connect(self) -> None:
        """The catch-up a connect needs, in its turn: run now if the turn is free; else,
        once a catch-up has succeeded, left in line to run with the socket up when its turn
        comes (every socket of a desk comes back at once after a network blip); before that,
        waited for, as the stream's first baseline must come before any live frame."""
        ticket = self._ask(urgent=True)
        if self._line.begin(ticket):
            self._catch_up_in_turn()
            return
        if self.session.may_defer():
            self.session.deferred()
            log.debug("%s: catch-up queued behind %d; connecting meanwhile", self.source.key,
                      self._line.ahead(ticket))
            return
        log.info("%s: catch-up over REST queued behind %d others before connecting",
                 self.source.key, self._line.ahead(ticket))
        while not self._stopping.is_set():
            self.heartbeat = self._clock()
            if self._line.wait(ticket, self.settings.tick):
                self._catch_up_in_turn()
                return
        self._leave_line()

    def _catch_up_in_turn(self) -> None:
        """Run the catch-up whose turn came (a full one if any ask was urgent, else a
        reconciliation), then give the turn up, whatever happened."""
        ticket = self._ticket
        assert ticket is not None and ticket.running
        try:
            self._run_catch_up(reconcile=not ticket.urgent)
        finally:
            self._leave_line()

    def _run_catch_up(self, reconcile: bool = False) -> None:
        """Ask the REST API what the socket does not say; a failure is reported once and
        tried again every `catch_up_retry`, never fatal. Called in the stream's turn in its
        REST host's line, so that calls are paced, not refused.

        It runs before each connect, so that every live frame read afterwards is newer than
        the baseline it sets (unless its turn has not come: then it runs with the socket up);
        with the socket up, a catch-up that failed is retried, and every `reconcile_every` a
        reconciliation reads what changed since the last good one (with RECONCILE_OVERLAP to
        spare), so a stream that went quiet hides nothing for long.
        """
        assert self.catch_up is not None and self._http is not None
        src = self.source
        started = time.time()
        since = started - WINDOW
        if reconcile and self._good_since is not None:
            since = max(since, self._good_since - RECONCILE_OVERLAP)
        self.catch_ups += 1
        try:
            frames = self.catch_up.frames(self._http, since)
        except Exception as exc:
            if self._stopping.is_set():
                return  # cut short by the stop: not a failure to tell anyone about
            self.catch_up_failures += 1
            if isinstance(exc, PartialCatchUp) and exc.frames:
                self.core.catch_up(src, exc.frames, started, complete=False)
            if isinstance(exc, RestError):
                why = str(exc)
            else:  # a reply we could not read (or a bug of ours) costs this catch-up alone
                why = f"the reply could not be read ({type(exc).__name__})"
                if type(exc).__name__ not in self._bugs_said:
                    self._bugs_said.add(type(exc).__name__)
                    log.error("%s: catch-up reply could not be read", src.key, exc_info=exc)
            log.warning("%s: catch-up over REST failed, retrying in %.0f s: %s", src.key,
                        self.settings.catch_up_retry, why)
            self.session.catch_up_error(why, getattr(exc, "retry_after", None))
            self._report()
            return
        self.core.catch_up(src, frames, started)  # even none: its baseline is complete
        self.session.caught_up()
        self._good_since = started
        self._report()
        log.log(logging.DEBUG if reconcile else logging.INFO,
                "%s: %s over REST (%d frames)", src.key,
                "reconciled" if reconcile else "caught up", len(frames))

    def _pause(self) -> None:
        """Read nothing while the state cannot be written (what is read could not be kept);
        the catch-up before the next connect fetches what the exchange said meanwhile."""
        self.session.paused()
        log.error("%s: paused: the state file cannot be written", self.source.key)
        while self.core.stalled is not None and not self._stopping.is_set():
            self.heartbeat = self._clock()
            self._stopping.wait(self.settings.tick)

    def _refused(self, reason: str, just_now: bool = False) -> None:
        delay = self.session.refused(reason, just_now=just_now)
        log.error("%s: %s; trying again in %.0f s", self.source.key, reason, delay)
        self._report()
        self._wait(delay)

    def _wait(self, delay: float) -> None:
        """Sleep before the next attempt, reporting the account down once it has been long."""
        deadline = self._clock() + delay
        while not self._stopping.is_set():
            now = self.heartbeat = self._clock()
            self.session.waiting()
            self._report()
            if now >= deadline:
                return
            self._stopping.wait(min(self.settings.tick, deadline - now))

    def _protocol_due(self, conn: wsclient.Connection, due: Callable[..., list[str]]) -> str | None:
        """What the protocol decided on its own: requests to send now (a SoDEX channel the
        exchange refused, asked again alone with the stream's backoff) and the `stream`
        events it owes (that channel refused, then taken again)."""
        try:
            for message in due(self._clock(), self.settings.backoff_first,
                               self.settings.backoff_max):
                conn.send(message)
        except wsclient.TransportError as exc:
            return f"disconnected ({exc})"
        for status, reason in self.protocol.take_reports():  # type: ignore[attr-defined]
            self.core.stream_status(self.source, status, reason)
        return None

    def _session(self, conn: wsclient.Connection) -> str:
        """Read until the socket breaks or the session gives it up; returns why.

        A socket counts as up only once something came back (SoDEX acks; for DeltaDeFi the
        pong to the ping sent at once), so a server that accepts and then says nothing is
        neither announced nor allowed to hide that the account is unreachable.
        """
        session, protocol, src = self.session, self.protocol, self.source
        due = getattr(protocol, "due", None)
        try:
            for message in protocol.opening():
                conn.send(message)
            if not protocol.app_ping:
                conn.ping()
        except wsclient.TransportError as exc:
            return f"disconnected ({exc})"
        while not self._stopping.is_set():
            if session.check_ready(protocol.ready()):
                log.info("%s: connected to %s", src.key, protocol.url)
                self._report()
            if session.steady():
                self._report()
            if due is not None and (why := self._protocol_due(conn, due)):
                return why
            if self.core.stalled is not None:
                return "paused: the state file cannot be written"
            if session.catch_up_retry_due():
                self._ask(urgent=True)
            elif session.reconcile_due():
                self._ask(urgent=False)
            if protocol.pushes_while_idle and (why := session.fell_silent()):
                log.warning("%s; reading what it may have missed over REST", why)
                if self.catch_up is not None:
                    self._ask(urgent=False)
            if self._ticket is not None and self._line.begin(self._ticket):
                self._catch_up_in_turn()
            overdue = session.overdue()
            if overdue:
                return overdue
            try:
                raw = conn.recv(min(self.settings.tick, QUEUED_TICK)
                                if self._ticket is not None and self._ticket.urgent
                                else self.settings.tick)
            except wsclient.Refused as exc:
                self.core.drop(src, Drop(exc.reason, str(exc)))
                return f"disconnected ({exc})"
            except wsclient.TransportError as exc:
                return f"disconnected ({exc})"
            self.heartbeat = self._clock()
            if raw is None:
                silent = session.silence()
                if silent:
                    return silent
                if session.ping_due():
                    message = protocol.idle_message()
                    try:
                        if message:
                            conn.send(message)
                        else:
                            conn.ping()
                    except wsclient.TransportError as exc:
                        return f"disconnected ({exc})"
                continue
            session.received()
            self.last_frame_wall = time.time()
            if not raw:
                continue
            try:
                frame = decode(raw)
            except Drop as drop:
                self.core.drop(src, drop)
                continue
            if not protocol.control(frame):
                if (again := session.data()) is not None:
                    log.info("%s", again)
                self.core.frame(src, frame, conn.buffered())
        return "stopping"
