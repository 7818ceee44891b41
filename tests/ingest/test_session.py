"""The stream's states and timing, with a fake clock and no socket: every decision the stream
loop acts on (backoff, keep-alive, giving up, reporting down and back, catch-up retries)."""

from __future__ import annotations

import dataclasses

import pytest

from alertd.ingest.session import Session, StreamSettings

S = StreamSettings(ping_every=20, idle_timeout=75, ack_timeout=10, backoff_first=1,
                   backoff_max=60, stable_after=30, refused_backoff=300, down_after=120,
                   catch_up_retry=30)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock() -> Clock:
    return Clock()


def session(clock: Clock, catch_up: bool = False, rng: float = 0.5) -> Session:
    return Session("sodex account desk (spot)", "wss://x/ws/spot", S, clock=clock,
                   rng=lambda: rng, catch_up=catch_up)


def test_backoff_doubles_to_the_cap_and_resets_only_after_a_stable_connection(clock):
    s = session(clock)
    delays = [s.connect_failed("refused") for _ in range(8)]
    assert delays == [1, 2, 4, 8, 16, 32, 60, 60]  # jitter at its middle (rng 0.5)
    s.opened()
    clock.advance(29)
    assert s.ended("disconnected") == 60  # up 29 s: not stable, no reset
    s.opened()
    clock.advance(30)
    assert s.ended("disconnected") == 1
    assert session(clock, rng=0.0).connect_failed("x") == 0.5  # jitter: ±50 %
    assert session(clock, rng=1.0).connect_failed("x") == 1.5


def test_connected_is_reported_once_when_answered_and_subscribed(clock):
    s = session(clock)
    s.opened()
    assert not s.check_ready(True)  # nothing came back yet
    s.received()
    assert not s.check_ready(False)  # acks still pending
    assert s.check_ready(True) and s.state == "connected"
    assert not s.check_ready(True)
    assert s.take_reports() == [("connected", "connected to wss://x/ws/spot")]


def test_a_socket_that_never_comes_up_is_given_up_after_the_ack_timeout(clock):
    s = session(clock)
    s.opened()
    clock.advance(10)
    assert s.overdue() is None
    clock.advance(0.5)
    assert s.overdue() == "no answer within 10 s of connecting"


def test_pings_when_idle_and_gives_a_silent_socket_up(clock):
    s = session(clock)
    s.opened()
    s.received()
    s.check_ready(True)
    pings = []
    for _ in range(74):
        clock.advance(1)
        assert s.silence() is None
        pings.append(s.ping_due())
    assert pings.count(True) == 3  # at 20, 40 and 60 s of silence, not every tick
    clock.advance(1)
    assert s.silence() == "no frame for 75 s"
    s.received()
    assert s.silence() is None and not s.ping_due()


def test_down_is_reported_once_after_down_after_and_only_for_a_socket_that_answered(clock):
    s = session(clock)
    s.opened()  # accepted, then silence: never answered, never up
    clock.advance(11)
    s.ended(s.overdue() or "")
    for _ in range(200):
        clock.advance(1)
        s.waiting()
    reports = s.take_reports()
    assert [r[0] for r in reports] == ["disconnected"]
    assert reports[0][1] == ("sodex account desk (spot) unreachable for 120 s: no answer within "
                             "10 s of connecting")
    s.opened()
    s.received()
    assert s.check_ready(True)
    assert s.take_reports() == []  # said down: back only once it has stayed up
    clock.advance(29)
    assert not s.steady()
    clock.advance(1)
    assert s.steady()
    assert s.take_reports() == [("connected", "connected to wss://x/ws/spot")]
    s.ended("disconnected (reset)")
    clock.advance(60)
    s.waiting()
    assert s.take_reports() == []  # a blip shorter than down_after stays quiet


def test_a_refusal_is_rejected_once_and_waits_minutes(clock):
    s = session(clock)
    assert s.refused("key refused (HTTP 401)") == 300
    assert s.state == "rejected"
    assert s.take_reports() == [("rejected", "key refused (HTTP 401)")]
    clock.advance(300)
    s.waiting()
    assert s.take_reports() == []  # already said: no `disconnected` on top


def test_catch_up_before_each_connect_and_a_failure_retried_and_reported_once(clock):
    s = session(clock, catch_up=True)
    assert s.connecting()
    s.catch_up_error("GET /state: HTTP 500")
    assert s.take_reports() == [("catch_up_failed", "sodex account desk (spot): cannot fetch "
                                 "what was missed while disconnected: GET /state: HTTP 500; "
                                 "retrying")]
    assert not s.connecting()  # a reconnect within the retry interval skips it
    s.opened()
    clock.advance(29)
    assert not s.catch_up_retry_due()
    clock.advance(1)
    assert s.catch_up_retry_due()
    s.catch_up_error("still down")
    assert s.take_reports() == []  # once per outage
    clock.advance(30)
    s.caught_up()
    assert s.take_reports() == [("connected", "caught up over REST")]
    assert s.connecting() and not s.catch_up_retry_due()
    s.paused()
    assert s.state == "paused" and s.connecting()


def test_without_catch_up_nothing_asks_for_one(clock):
    s = session(clock)
    assert not s.connecting()
    s.paused()
    assert not s.connecting() and not s.catch_up_retry_due()


def test_backoff_after_two_thousand_failures_stays_at_the_cap_with_its_jitter(clock):
    settings = dataclasses.replace(S, backoff_first=1.0, backoff_max=60.0)  # floats, as run

    def failing(rng: float) -> Session:
        return Session("x", "wss://x", settings, clock=clock, rng=lambda: rng)

    s = failing(0.5)
    delays = [s.connect_failed("refused") for _ in range(2001)]
    assert s.failures == 2001 and delays[-1000:] == [60.0] * 1000
    for rng, delay in ((0.0, 30.0), (1.0, 90.0)):
        s = failing(rng)
        s.failures = 2000
        assert s.connect_failed("refused") == delay


def test_a_server_closing_every_session_at_once_is_down_once_and_never_back(clock):
    """Handshakes that succeed do not make an account reachable: 0.2 s sessions for 260 s."""
    s = session(clock)
    while clock.now < 1000 + 260:
        s.opened()
        s.received()
        s.check_ready(True)
        clock.advance(0.2)
        assert not s.steady()
        delay = s.ended("disconnected (closed by the server)")
        clock.advance(min(delay, 1.0))
        s.waiting()
    assert [r[0] for r in s.take_reports()] == ["connected", "disconnected"]


def test_a_socket_promised_to_push_that_sends_only_pongs_is_silent_once_then_speaks_again(
        clock):
    s = session(clock)
    s.opened()
    s.received()
    s.check_ready(True)
    s.data()
    for _ in range(59):
        clock.advance(1)
        s.received()  # a pong
        assert s.fell_silent() is None
    clock.advance(1)
    said = s.fell_silent()
    assert said is not None and "no data for 60 s" in said and s.silent_since == clock.now
    clock.advance(30)
    assert s.fell_silent() is None  # once per silent spell
    assert s.data() == "sodex account desk (spot) sends data again after 90 s"
    assert s.silent_since is None and s.data() is None


def test_only_a_connected_socket_can_fall_silent(clock):
    s = session(clock)
    s.opened()
    clock.advance(100)
    assert s.fell_silent() is None  # still subscribing: the ack timeout rules


def test_a_catch_up_waiting_its_turn_is_deferred_only_once_the_stream_has_a_baseline(clock):
    s = session(clock, catch_up=True)
    assert s.connecting() and not s.may_defer()  # the first one is waited for, never deferred
    s.caught_up()
    s.opened()
    clock.advance(5)
    s.ended("disconnected")
    assert s.connecting() and s.may_defer()
    s.deferred()  # its turn has not come: connect now, catch up with the socket up
    assert s.catch_up_retry_due() and not s.catch_up_failed
    assert s.take_reports() == []  # waiting is not failing: nothing said
    s.caught_up()
    assert not s.catch_up_retry_due()
