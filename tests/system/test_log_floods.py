"""A bug that every frame hits costs one traceback, then a count a minute (issue 16.24): 20,000
failing frames once wrote 20,000 tracebacks (23 MB)."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from alertd.domain.observations import Source
from alertd.exchanges import EXCHANGES
from alertd.rules.load import load_rules
from alertd.runtime.core import Core
from alertd.runtime.pipeline import Pipeline
from alertd.sim.frames import sx, sx_trade
from alertd.storage.store import Store
from tests.conftest import write
from tests.sinks import wait_for

SPOT = Source("desk", "sodex", "spot")
FRAMES = 2_000
RULES = """
rules:
  - name: fill
    on: fill
    notify: [t]
    group_wait: 0
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1_790_000_000.0

    def __call__(self) -> float:
        return self.now


class BrokenNormaliser:
    """SoDEX as it is, but its normalising has a bug that every trade frame reaches."""

    def __init__(self) -> None:
        self.real = EXCHANGES["sodex"]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)

    def normalise(self, key: str, frame: dict[str, Any], market: str, now: float) -> list:
        return {}["missing"]


class Root(logging.Handler):
    """A handler on the root logger at DEBUG, keeping every record."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def tracebacks(self) -> list[logging.LogRecord]:
        return [r for r in self.records if r.exc_info]

    def counts(self) -> list[str]:
        return [r.getMessage() for r in self.records if "more like it" in r.getMessage()]


@pytest.fixture
def root():
    handler, logger = Root(), logging.getLogger()
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    yield handler
    logger.removeHandler(handler)
    logger.setLevel(level)


@pytest.fixture
def pipeline(tmp_path):
    write(tmp_path / "rules" / "r.yaml", RULES)
    clock = Clock()
    p = Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(tmp_path / "s.db", clock),
                 clock=clock)
    yield p
    p.store.close()


def trades(first: int, n: int) -> list[str]:
    return [sx("accountTrade", sx_trade(t, "0.1", at=1_790_000_000.0))
            for t in range(first, first + n)]


def test_a_normaliser_bug_on_2000_frames_logs_one_traceback_and_counts_each_drop(
        pipeline, root, monkeypatch):
    monkeypatch.setitem(EXCHANGES, "sodex", BrokenNormaliser())  # the registry the core asks
    for raw in trades(1, FRAMES):
        assert pipeline.raw(SPOT, raw) == []
    assert len(root.tracebacks()) == 1
    assert root.tracebacks()[0].exc_info[0] is KeyError
    assert pipeline.drops.counts[(SPOT.key, "unreadable")] == FRAMES
    assert root.counts() == []  # within the minute: counted, not said
    pipeline.clock.now += 61  # type: ignore[attr-defined]
    pipeline.raw(SPOT, trades(FRAMES + 1, 1)[0])
    assert len(root.tracebacks()) == 1
    assert len(root.counts()) == 1 and f"{FRAMES} more like it in the last minute" \
        in root.counts()[0] and "KeyError" in root.counts()[0]


def test_a_detection_bug_on_2000_frames_logs_one_traceback_and_housekeeping_counts_it(
        pipeline, root):
    def broken(*args: Any) -> list:
        raise RuntimeError("a bug in detection")

    pipeline.detector.observe = broken  # type: ignore[method-assign]
    for raw in trades(1, FRAMES):
        assert pipeline.raw(SPOT, raw) == []
    errors = [r for r in root.tracebacks() if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "internal error on a frame" in errors[0].getMessage()
    assert pipeline.drops.counts[(SPOT.key, "internal_error")] == FRAMES
    pipeline.flush()
    assert root.counts() == []
    pipeline.clock.now += 60  # type: ignore[attr-defined]
    pipeline.flush()  # the flood has stopped: the periodic housekeeping says the count
    assert len(root.counts()) == 1 and f"{FRAMES - 1} more like it" in root.counts()[0]
    pipeline.flush()
    assert len(root.counts()) == 1 and len(root.tracebacks()) == 1


def test_the_core_says_a_failing_item_once_and_the_rest_go_on(pipeline, root):
    done: list[int] = []

    def item(n: int) -> None:
        done.append(n)
        if n % 2:
            raise ValueError("a bug in a submitted item")

    core = Core(pipeline)
    core.start()
    try:
        for n in range(FRAMES):
            core.submit(item, n)
        assert wait_for(lambda: len(done) == FRAMES, 30)
        assert core.call(lambda: "alive") == "alive"
    finally:
        core.stop()
    failed = [r for r in root.tracebacks() if "failed; that item was dropped" in r.getMessage()]
    assert len(failed) == 1 and failed[0].exc_info[0] is ValueError
