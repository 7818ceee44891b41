"""The REST adapter against real HTTP servers on 127.0.0.1: redirects never carry the key away."""

from __future__ import annotations

import json

import pytest

from alertd.transport.http import Http, RestError
from tests.sinks import JsonServer

KEY = "sk-live-REDIRECTED-4242"


@pytest.fixture
def servers():
    made = [JsonServer(), JsonServer()]
    yield made
    for s in made:
        s.close()


def test_a_redirect_to_another_origin_is_refused_and_the_key_never_leaves(servers):
    api, elsewhere = servers
    elsewhere.routes["/steal"] = (200, {}, b"[]")
    api.routes["/accounts/balance"] = (302, {"Location": f"{elsewhere.base}/steal"}, b"")
    with pytest.raises(RestError) as caught:
        Http(timeout=5).get(f"{api.base}/accounts/balance", headers={"X-API-KEY": KEY})
    assert "redirected to another host" in str(caught.value)
    assert KEY not in str(caught.value)
    assert elsewhere.seen == []


def test_a_redirect_within_the_origin_is_followed_with_the_key(servers):
    api, _ = servers
    api.routes["/v1/balance"] = (301, {"Location": "/v2/balance"}, b"")
    api.routes["/v2/balance"] = (200, {}, json.dumps([{"asset": "ada", "free": "1.5"}]).encode())
    reply = Http(timeout=5).get(f"{api.base}/v1/balance", headers={"X-API-KEY": KEY})
    assert str(reply[0]["free"]) == "1.5"
    assert [h.get("X-API-KEY") for _, h in api.seen] == [KEY, KEY]


def test_a_redirect_loop_ends_as_an_error(servers):
    api, _ = servers
    api.routes["/a"] = (302, {"Location": "/a"}, b"")
    with pytest.raises(RestError, match="redirects"):
        Http(timeout=5).get(f"{api.base}/a")
    assert len(api.seen) == 4


def test_a_hostile_number_in_a_reply_is_an_error_not_a_gigabyte(servers):
    api, _ = servers
    api.routes["/accounts/balance"] = (200, {}, b'[{"asset": "ada", "free": 1e999999999}]')
    with pytest.raises(RestError, match="amount_out_of_range") as caught:
        Http(timeout=5).get(f"{api.base}/accounts/balance")
    assert len(str(caught.value)) < 300


def test_closed_sockets_are_not_kept(servers):
    api, _ = servers
    api.routes["/x"] = (200, {"Connection": "close"}, b"[]")
    http = Http(timeout=5)
    for _ in range(20):
        http.get(f"{api.base}/x")
    assert len(http._sockets.open) <= 2  # each reply closed its socket; 20 were held before


def test_requests_to_one_host_are_spaced_across_every_account():
    from alertd.transport.http import Pacer

    now = [100.0]
    pacer = Pacer(per_second=10, clock=lambda: now[0])
    slots = [pacer.slot("https://api:")[0] for _ in range(5)]  # five accounts at once
    assert [round(s, 6) for s in slots] == [100.0, 100.1, 100.2, 100.3, 100.4]
    assert pacer.slot("https://other:") == (100.0, False)  # another host has its own pace
    now[0] = 200.0
    assert pacer.slot("https://api:") == (200.0, False)  # no debt carried over idle time


def test_calls_refused_for_a_long_wait_book_no_slot_so_a_storm_cannot_run_away():
    """200 accounts reconnecting at once: past the first 10 s of slots, calls are refused,
    and each refusal used to book a slot, pushing every later call further away for good."""
    from alertd.transport.http import Pacer

    now = [100.0]
    pacer = Pacer(per_second=10, clock=lambda: now[0])
    booked = [pacer.slot("https://api:", within=10.0) for _ in range(1000)]
    assert sum(at - 100.0 <= 10.0 for at, _ in booked) == 101
    now[0] = 111.0  # the first hundred went out; the next call is not pushed past them
    assert pacer.slot("https://api:", within=10.0) == (111.0, False)
    pacer.hold("https://api:", 60)
    at, held = pacer.slot("https://api:", within=10.0)
    assert held and at == 171.0


def test_a_429_holds_the_host_for_its_retry_after_and_says_so(servers):
    from alertd.transport.http import Pacer

    api, _ = servers
    api.routes["/accounts/balance"] = (429, {"Retry-After": "7"}, b'{"error": "slow down"}')
    pacer = Pacer(per_second=1000)
    with pytest.raises(RestError) as caught:
        Http(timeout=5, pacer=pacer).get(f"{api.base}/accounts/balance")
    assert caught.value.status == 429 and caught.value.retry_after == 7.0
    with pytest.raises(RestError, match="asked us to wait") as held:
        Http(timeout=5, pacer=pacer).get(f"{api.base}/accounts/balance")  # another account
    assert len(api.seen) == 1 and held.value.retry_after > 5


def test_a_catch_up_told_to_wait_is_not_tried_before_it_may():
    from alertd.ingest.session import Session, StreamSettings

    now = [1000.0]
    session = Session("x", "wss://x", StreamSettings(catch_up_retry=30), clock=lambda: now[0],
                      rng=lambda: 0.5, catch_up=True)
    session.catch_up_error("HTTP 429", retry_after=300)
    assert session.catch_up_due == 1300.0


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


API = "https://sodex:"


def test_catch_ups_to_one_host_take_turns_first_asked_first_served_a_few_at_a_time():
    from alertd.transport.http import Pacer
    from alertd.transport.line import Line

    clock = Clock()
    line = Line(Pacer(clock=clock), at_once=2)
    a, b, c, d = (line.ask(API, key, urgent=True) for key in "abcd")
    assert line.begin(a) and not line.begin(c)  # one turn free, and b asked before c
    assert line.begin(b) and not line.begin(c)  # both turns taken
    assert line.ahead(d) == 1
    other = line.ask("https://deltadefi:", "a", urgent=True)
    assert line.begin(other)  # another host has its own line
    line.end(a)
    assert not line.begin(d) and line.begin(c)
    line.end(b)
    assert line.begin(d)


def test_a_catch_up_after_a_gap_goes_first_and_a_stream_holds_one_place_however_often_it_asks():
    from alertd.transport.http import Pacer
    from alertd.transport.line import Line

    clock = Clock()
    line = Line(Pacer(clock=clock), at_once=1)
    routine = [line.ask(API, f"r{i}", urgent=False) for i in range(3)]
    gap = line.ask(API, "g", urgent=True)
    assert not line.begin(routine[0]) and line.begin(gap)  # before reconciliations
    line.end(gap)
    for _ in range(100):  # asked again every tick, and once after a new gap
        assert line.ask(API, "r2", urgent=False) is routine[2]
    assert line.ask(API, "r2", urgent=True) is routine[2] and routine[2].urgent
    assert line.ahead(routine[2]) == 0 and len(line._mine) == 3  # bounded by the streams
    assert not line.begin(routine[0]) and line.begin(routine[2])


def test_no_catch_up_begins_while_the_host_holds_us_back_and_a_silent_stream_is_passed_over():
    from alertd.transport.http import Pacer
    from alertd.transport.line import FRESH, Line

    clock = Clock()
    pacer = Pacer(clock=clock)
    line = Line(pacer, at_once=1)
    first, second = line.ask(API, "first", urgent=True), line.ask(API, "second", urgent=True)
    pacer.hold(API, 60)  # a 429 with Retry-After: 60
    for _ in range(60):  # both ask every tick meanwhile
        assert not line.begin(first) and not line.begin(second)
        clock.now += 1
    clock.now += 0.5
    assert not line.begin(second)  # first asked within FRESH: its turn
    clock.now += FRESH  # first's stream backs off and asks nothing meanwhile
    assert line.begin(second)  # not held up by it
    line.end(second)
    third = line.ask(API, "third", urgent=True)
    assert line.begin(first) and line.ahead(third) == 0  # first kept its place


def test_a_desk_reconnecting_at_once_is_caught_up_paced_and_no_call_is_refused():
    """100 SoDEX accounts (spot 4 calls, perps 5) cut at once: every catch-up waits its turn,
    no call waits longer than its timeout for a slot (the old refusal), calls start 0.1 s
    apart at least, and each catch-up, once begun, ends well inside its 30 s budget."""
    from itertools import pairwise

    from alertd.exchanges.common import DEADLINE
    from alertd.transport.http import Pacer
    from alertd.transport.line import Line

    clock = Clock(0.0)
    pacer = Pacer(per_second=10, clock=clock)
    line = Line(pacer)
    left = {f"s{i}": 4 + i % 2 for i in range(200)}
    tickets = {key: line.ask(API, key, urgent=True) for key in left}
    busy: dict[str, float] = {}
    began: dict[str, float] = {}
    starts: list[float] = []
    spans: list[float] = []
    while left:
        for key in list(left):
            if key not in began:
                if not line.begin(tickets[key]):
                    continue
                began[key] = clock.now
            if clock.now < busy.get(key, 0.0):
                continue
            if left[key] == 0:
                line.end(tickets[key])
                spans.append(clock.now - began[key])
                del left[key]
                continue
            at, _ = pacer.slot(API, within=10.0)
            assert at - clock.now <= 10.0, "a call would have been refused"
            starts.append(at)
            busy[key] = at + 0.15  # a real round trip
            left[key] -= 1
        clock.now = round(clock.now + 0.05, 2)
    assert len(starts) == 900 and len(spans) == 200
    assert all(b - a >= 0.1 - 1e-9 for a, b in pairwise(starts))  # 10/s
    assert max(spans) < DEADLINE / 3
    assert starts[-1] < 900 / 10 + 5  # the pace kept busy: about 90 s for the whole desk
    assert line._mine == {}
