"""One bug costs one item: a fault injected at a stage boundary costs that item alone, is said
once, and never wedges a stream or stops alerts that have nothing to do with it."""

from __future__ import annotations

import logging

from alertd.sim.frames import sx_trade
from tests.conftest import USER, agent_config, build_agent
from tests.sinks import HttpSink, wait_for
from tests.system.test_faults import RULES, SPOT

__all__ = ["RULES"]  # the rules_dir fixture reads the module's RULES

class Unreadable:
    """A catch-up whose reply our reader cannot take (a row without `id`, a row that is no
    object): what it raises is not a RestError, as a bug of ours would not be either."""

    def __init__(self, real) -> None:
        self.real, self.calls = real, 0

    def frames(self, http, since):
        self.calls += 1
        raise KeyError("id")


def test_an_unreadable_catch_up_reply_is_catch_up_failed_and_the_stream_still_flows(
        tmp_path, sim, rules_dir, caplog):
    caplog.set_level(logging.ERROR, logger="alertd.stream")
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        agent = build_agent(cfg, rules_dir)
        for stream in agent.streams:
            stream.catch_up = Unreadable(stream.catch_up)
        agent.start()
        try:
            assert wait_for(lambda: "stream desk spot catch_up_failed" in sink.titles(), 15), \
                sink.titles()
            assert sim.wait_ready(SPOT, channels=4)
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(91, "0.1"))
            assert wait_for(lambda: "fill vBTC_vUSDC:91" in sink.titles(), 10)
        finally:
            agent.stop(timeout=5)
    tracebacks = [r.getMessage() for r in caplog.records
                  if r.exc_info and "catch-up" in r.getMessage()]
    assert sorted(tracebacks) == sorted(f"{s.source.key}: catch-up reply could not be read"
                                        for s in agent.streams)  # once per stream
    assert all(stream.connects == 1 for stream in agent.streams)
