"""A stream's catch-up waits its turn in its REST host's line, end to end (simulator sockets
and REST, a real webhook): the first one before the socket connects, the one after a cut with
the socket already back; waiting is `catch_up_queued`, never `catch_up_failed`."""

from __future__ import annotations

from alertd.sim.frames import sx_trade
from alertd.transport.http import origin
from alertd.transport.line import AT_ONCE, LINE, Ticket
from tests.conftest import USER, agent_config, build_agent
from tests.sinks import HttpSink, wait_for

SPOT = f"sodex:{USER}:spot"
RULES = """
rules:
  - name: fill
    on: fill
    notify: [hook]
    group_wait: 0
    title: "fill {account} {trade_id} {qty} caught_up={caught_up}"
  - name: stream
    on: stream
    notify: [hook]
    group_wait: 0
    title: "stream {account} {status}"
"""


def take_every_turn(host: str) -> list[Ticket]:
    """Other accounts' catch-ups running on the host: every turn is taken (once those
    already running or asked for before end)."""
    taken = [LINE.ask(host, f"someone-else-{i}", urgent=True) for i in range(AT_ONCE)]
    assert wait_for(lambda: all([LINE.begin(t) for t in taken]), 10)
    return taken


def give_back(taken: list[Ticket]) -> None:
    for ticket in taken:
        LINE.end(ticket)


def test_a_catch_up_waits_its_turn_before_the_first_connect_and_with_the_socket_up_after(
        tmp_path, sim, rules_dir):
    host = origin(f"http://{sim.host}:{sim.port}")
    caught = "fill desk vBTC_vUSDC:7 0.3 caught_up=yes"
    with HttpSink() as sink:
        agent = build_agent(agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]"),
                            rules_dir)
        spot = next(s for s in agent.streams if s.source.exchange == "sodex")
        taken = take_every_turn(host)
        agent.start()
        try:
            assert wait_for(lambda: spot.state == "catch_up_queued", 10), spot.state
            assert sim.connects[SPOT] == 0 and spot.catch_ups == 0  # no live frame before it
            give_back(taken)
            assert sim.wait_ready(SPOT, channels=4)
            assert wait_for(lambda: spot.state == "connected", 10) and spot.catch_ups == 1

            taken = take_every_turn(host)
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(7, "0.3"), live=False)
            sim.drop(SPOT)
            assert sim.wait_ready(SPOT, connects=2, channels=4)  # back before its catch-up
            assert wait_for(lambda: spot.state == "catch_up_queued", 10), spot.state
            assert spot.catch_ups == 1 and caught not in sink.titles()
            give_back(taken)
            assert wait_for(lambda: caught in sink.titles(), 10), sink.titles()
            assert wait_for(lambda: spot.state == "connected", 10), spot.state
        finally:
            give_back(taken)
            agent.stop(timeout=5)
    assert spot.catch_up_failures == 0
    assert not any("catch_up_failed" in t for t in sink.titles()), sink.titles()
    assert sink.titles().count(caught) == 1
    assert sim.contract_violations == []
