"""The owner of the state (issue 19): a socket thread runs its own frames under the owner
lock, never beside another item; an alert with nothing behind it is committed before its
frame returns, and one with its socket's next frame already read shares that commit."""

from __future__ import annotations

import threading

import pytest

from alertd.domain.observations import Drop
from alertd.rules.load import load_rules
from alertd.runtime.core import Core
from alertd.runtime.pipeline import Pipeline
from alertd.sim.frames import dd_order
from alertd.storage.store import Store
from tests.conftest import MAIN, Clock, write
from tests.sinks import wait_for

RULES = """
rules:
  - name: fills
    on: fill
    notify: [t]
    group_wait: 0
    title: "{trade_id} {qty}"
"""


@pytest.fixture
def idle_core(tmp_path):
    """A Core whose thread is not started yet: nothing commits behind the test's back."""
    clock = Clock()
    write(tmp_path / "rules" / "r.yaml", RULES)
    pipeline = Pipeline(load_rules(tmp_path / "rules", ["t"]),
                        Store(tmp_path / "s.db", clock=clock), clock=clock)
    core = Core(pipeline)
    yield core
    core.stop()
    pipeline.store.close()


@pytest.fixture
def core(idle_core):
    idle_core.start()
    return idle_core


def test_a_socket_thread_runs_its_frame_itself_but_never_beside_a_core_item(core):
    holding, release = threading.Event(), threading.Event()
    ran_on: list[str] = []

    def core_item() -> None:
        holding.set()
        release.wait(10)

    def drop_counted(src, drop):
        ran_on.append(threading.current_thread().name)
        return []

    core.pipeline.drop = drop_counted  # type: ignore[method-assign]
    core.submit(core_item)
    assert holding.wait(10)
    socket = threading.Thread(target=core.drop, args=(MAIN, Drop("not_json")), name="socket")
    socket.start()
    assert wait_for(lambda: core.depth() == 1, 10)  # it waits for the owner lock
    assert ran_on == []
    release.set()
    socket.join(10)
    assert ran_on == ["socket"]


def test_an_alert_with_nothing_behind_it_is_on_disk_when_its_frame_returns(core):
    store = core.pipeline.store
    core.frame(MAIN, dd_order("o1", "partially_filled", [("r1", "5")], "5",
                              at=store.clock()))
    assert store.flush_due_in() is None and store.visible_id >= 1


def test_an_alert_whose_socket_holds_the_next_frame_waits_for_it_at_most_alert_commit(
        idle_core):
    store = idle_core.pipeline.store
    idle_core.frame(MAIN, dd_order("o1", "partially_filled", [("r1", "5")], "5",
                                   at=store.clock()), more=True)
    assert store.alerts_pending() and store.visible_id == 0
    idle_core.start()
    assert wait_for(lambda: store.visible_id >= 1, 10)  # the core thread's commit timer
