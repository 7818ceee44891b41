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
