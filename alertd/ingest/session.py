"""A stream's states and timing, without sockets, threads or sleeping.

The stream loop (`streams.py`) does the I/O and tells a `Session` what happened (a connect
failed, a socket opened, a frame came, nothing came); the session answers what to do (how
long to wait, whether to ping, whether to give the socket up) and queues the `stream` events
to report. Every decision is here, so it is tested with a fake clock, the way
python-websockets tests its protocol core without a network.

    starting → catching up → connecting → subscribing → up
                   ↑                           │          │ broken, silent
                   └── reconnecting (backoff) ←┴──────────┘
    refused (401/403, a refused subscription) → rejected, minutes apart
    the state file cannot be written → paused, until it can
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

MAX_DOUBLINGS = 30
"""Backoff stops doubling here: 2**30 times any first delay is past any maximum, and a float
times 2**1024 overflows (a stream down for days fails over a thousand times)."""


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
    reconcile_every: float = 120.0
    """While connected, the REST catch-up runs again this often (0: never), so a fill that a
    stream answering pings but sending nothing never said is still announced."""
    silent_after: float = 60.0
    """A socket whose exchange promises data while idle (`pushes_while_idle`) and that sent
    none for this long, pongs aside, is reported silent and read over REST at once: SoDEX
    pushes a snapshot each block and drops a socket it pushed nothing to for 60 s."""


class Session:
    """One account's stream on one market, as states and clocks.

    Backoff doubles from `backoff_first` to `backoff_max` with ±50 % jitter and resets only
    after a connection stayed up `stable_after`; a refusal waits `refused_backoff` (±25 %).
    The account is reported `disconnected` once it has not been up for `down_after`, and
    `connected` once it is back. Up means a connection that stayed ready for `up_for`
    (the shorter of `stable_after` and `down_after`); one short session is a blip, but a
    server that accepts and closes every session at once is unreachable, however many
    handshakes succeed.
    """

    def __init__(self, label: str, url: str, settings: StreamSettings, *,
                 clock: Callable[[], float], rng: Callable[[], float],
                 catch_up: bool = False) -> None:
        self.label, self.url, self.settings = label, url, settings
        self._clock, self._rng = clock, rng
        self.state = "starting"
        self.last_error = "not connected yet"
        self.failures = 0
        self.down_since = clock()
        self.down_reported = False
        self.catch_up = catch_up
        self.catch_up_due: float | None = None
        self.catch_up_failed = False
        self.caught_up_at: float | None = None
        self.answered = self.announced = False
        self.up_for = min(settings.stable_after, settings.down_after)
        self._back_pending = False
        self._short = 0
        """Sessions in a row that were ready but ended before `up_for` (flapping past 1)."""
        self._said_up = False
        """`connected` was the last word on the stream (a reconnect need not say it again)."""
        self._opened = self._last_frame = self._last_sent = self._last_data = 0.0
        self.silent_since: float | None = None
        """When a socket promised to push began to send nothing but pongs (None: it sends)."""
        self._reports: list[tuple[str, str]] = []

    def take_reports(self) -> list[tuple[str, str]]:
        """The `stream` events (status, reason) decided since the last call."""
        reports, self._reports = self._reports, []
        return reports

    # --- before a connect ------------------------------------------------------------------

    def connecting(self) -> bool:
        """A connect is about to be tried; True if a catch-up should run first."""
        self.state = "connecting"
        return self.catch_up and (self.catch_up_due is None
                                  or self._clock() >= self.catch_up_due)

    def may_defer(self) -> bool:
        """Whether the catch-up before this connect may wait for its turn in the REST line
        with the socket up, run like a retry when it comes: only once one has succeeded.
        Before that the stream has no baseline, and a live frame first would make it watched,
        so that the catch-up after it took the account's last day of fills for news."""
        return self.caught_up_at is not None

    def deferred(self) -> None:
        """The catch-up before this connect waits for its turn: it is due from now on, and
        runs with the socket up when the turn comes (`catch_up_retry_due`)."""
        if self.catch_up_due is None:
            self.catch_up_due = self._clock()

    def catch_up_retry_due(self) -> bool:
        """With the socket up, a catch-up that failed is tried again when it is due, and one
        deferred for its turn (`deferred`) is due at once."""
        return (self.catch_up and self.catch_up_due is not None
                and self._clock() >= self.catch_up_due)

    def reconcile_due(self) -> bool:
        """With the socket up and the last catch-up good, whether to read REST again: the
        exchange's own connector re-reads its balances every 10 s; this is paced wider."""
        every = self.settings.reconcile_every
        return (self.catch_up and every > 0 and self.state == "connected"
                and self.catch_up_due is None and self.caught_up_at is not None
                and self._clock() - self.caught_up_at >= every)

    def caught_up(self) -> None:
        self.catch_up_due = None
        self._last_frame = self.caught_up_at = self._clock()  # REST took socket time
        if self.catch_up_failed:
            self.catch_up_failed = False
            self._reports.append(("connected", "caught up over REST"))

    def catch_up_error(self, error: str, retry_after: float | None = None) -> None:
        """Tried again in `catch_up_retry`, or later if the server said so (`Retry-After`);
        reported once per outage."""
        self._last_frame = self._clock()
        self.catch_up_due = self._last_frame + max(self.settings.catch_up_retry,
                                                   retry_after or 0.0)
        if not self.catch_up_failed:
            self.catch_up_failed = True
            self._reports.append(("catch_up_failed", (
                f"{self.label}: cannot fetch what was missed while disconnected: {error}; "
                "retrying")))

    # --- a connection ------------------------------------------------------------------------

    def opened(self) -> None:
        now = self._clock()
        self.state = "subscribing"
        self._opened = self._last_frame = self._last_sent = now
        self.answered = self.announced = False
        self.silent_since = None

    def received(self) -> None:
        """Anything came back: a frame, an ack, a pong."""
        self.answered = True
        self._last_frame = self._clock()

    def data(self) -> str | None:
        """A data frame came (not an ack or a pong); if the socket was silent, what to say
        now that it speaks again."""
        self._last_data = self._clock()
        if self.silent_since is None:
            return None
        gap, self.silent_since = self._last_data - self.silent_since, None
        return f"{self.label} sends data again after {gap + self.settings.silent_after:.0f} s"

    def fell_silent(self) -> str | None:
        """Once per silent spell, while connected: why this socket counts as silent."""
        now = self._clock()
        if (self.silent_since is not None or self.state != "connected"
                or now - max(self._last_data, self._opened) < self.settings.silent_after):
            return None
        self.silent_since = now
        return (f"{self.label}: no data for {now - max(self._last_data, self._opened):.0f} s "
                "although the exchange pushes every block; the socket answers pings only")

    def check_ready(self, subscribed: bool) -> bool:
        """True once, when the socket has answered and every subscription is acknowledged:
        the stream is up, and `connected` is reported."""
        if self.announced or not (self.answered and subscribed):
            return False
        self.announced = True
        self.state = "connected"
        if self.down_reported:  # said down: say back only once it has stayed up (`steady`)
            self._back_pending = True
        elif not self._said_up:
            self._said_up = True
            self._reports.append(("connected", f"connected to {self.url}"))
        return True

    def steady(self) -> bool:
        """Called each tick while the socket is ready: once it has stayed up `up_for`, the
        account counts as up (and is said to be back, if it was said down); True then."""
        now = self._clock()
        if not self.announced or now - self._opened < self.up_for:
            return False
        self.down_since, self._short = now, 0
        if not self._back_pending:
            return False
        self._back_pending = self.down_reported = False
        self._said_up = True
        self._reports.append(("connected", f"connected to {self.url}"))
        return True

    def overdue(self) -> str | None:
        """Why to give up a socket that has not come up in time, if so."""
        if not self.announced and self._clock() - self._opened > self.settings.ack_timeout:
            return f"no answer within {self.settings.ack_timeout:.0f} s of connecting"
        return None

    def silence(self) -> str | None:
        """Nothing came this tick: why to give the socket up, or None (see `ping_due`)."""
        quiet = self._clock() - self._last_frame
        if quiet >= self.settings.idle_timeout:
            return f"no frame for {quiet:.0f} s"
        return None

    def ping_due(self) -> bool:
        """Whether to send a keep-alive now; sending it is then assumed."""
        now = self._clock()
        if now - max(self._last_frame, self._last_sent) >= self.settings.ping_every:
            self._last_sent = now
            return True
        return False

    # --- after an attempt ---------------------------------------------------------------------

    def ended(self, reason: str) -> float:
        """The socket broke or was given up; the seconds to wait before the next try."""
        now = self._clock()
        if now - self._opened >= self.settings.stable_after:
            self.failures = 0
        if self.announced:
            if now - self._opened >= self.up_for:
                self.down_since, self._short = now, 0  # up until now
            else:
                self._short += 1
                if self._short == 1:  # one blip: up until now; a second short one in a row
                    self.down_since = now  # is flapping, and leaves the clock running
        self._back_pending = False
        return self.connect_failed(reason)

    def connect_failed(self, reason: str) -> float:
        self.last_error = reason
        delay = min(self.settings.backoff_max, self.settings.backoff_first
                    * 2 ** min(self.failures, MAX_DOUBLINGS)) * (0.5 + self._rng())
        self.failures += 1
        self.state = "reconnecting"
        return delay

    def refused(self, reason: str, *, just_now: bool = False) -> float:
        """The exchange said no (the key, a subscription): report `rejected`, wait minutes."""
        if just_now:
            self.down_since = self._clock()
        self.last_error = reason
        self.state = "rejected"
        self.down_reported = True
        self._said_up = False
        self._reports.append(("rejected", reason))
        return self.settings.refused_backoff * (0.75 + self._rng() / 2)

    def waiting(self) -> None:
        """Called while waiting to try again: reports the account down once it is long."""
        now = self._clock()
        if not self.down_reported and now - self.down_since >= self.settings.down_after:
            self.down_reported = True
            self._said_up = False
            self._reports.append(("disconnected", (
                f"{self.label} unreachable for {now - self.down_since:.0f} s: "
                f"{self.last_error}")))

    def paused(self) -> None:
        """The state file cannot be written: read nothing; catch up before reconnecting."""
        self.state = "paused"
        self.catch_up_due = None
