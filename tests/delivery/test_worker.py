"""Delivery against a real webhook: a slow one gets each alert once, and failures jump the queue."""

from __future__ import annotations

from alertd.delivery.notify import build_notifiers
from alertd.delivery.outbox import Outbox
from alertd.delivery.ratelimit import parse_rate, plan
from alertd.delivery.worker import UNSURE_WAIT, DeliveryWorker
from alertd.runtime.agent import targets
from alertd.storage.store import Store
from tests.conftest import Clock
from tests.shaping.test_livable import queue
from tests.sinks import HttpSink, wait_for


def worker_for(state, tmp_path, sink, clock=None, rate=None, read_timeout=None, on_dead=None):
    kw = {} if read_timeout is None else {"read_timeout": read_timeout}
    notifiers = build_notifiers({"hook": (sink.url,)}, "test", **kw)
    store = Store(state, **({} if clock is None else {"clock": clock}))
    outbox = Outbox(store)
    outbox.targets = targets(notifiers)
    [target] = notifiers["hook"].targets
    worker = DeliveryWorker(notifiers["hook"], Outbox(store, own=True), on_dead=on_dead,
                            rates={target: rate}, **({} if clock is None else {"clock": clock}))
    return store, outbox, worker


def test_a_webhook_slower_than_apprise_s_default_timeout_gets_the_alert_once(state, tmp_path):
    with HttpSink() as sink:
        sink.answer_after = 5.0  # Apprise gives up after 4 s by default, and alertd retried
        store, outbox, worker = worker_for(state, tmp_path, sink)
        queue(store, outbox, 1)
        worker.start()
        try:
            assert wait_for(lambda: outbox.counts()["hook"]["delivered"] == 1, 20)
        finally:
            worker.stop(10)
    assert sink.requests == 1
    assert sink.titles() == ["a0"]


def test_an_unanswered_send_is_retried_once_after_a_pause_then_given_up_and_said(state, tmp_path):
    clock = Clock()
    dead = []
    with HttpSink() as sink:
        sink.answer_after = 1.0
        store, outbox, worker = worker_for(state, tmp_path, sink, clock=clock, read_timeout=0.3,
                                           on_dead=lambda name, d, why: dead.append(why))
        queue(store, outbox, 1)
        worker.start()
        try:
            assert wait_for(lambda: store.db.execute(
                "SELECT last_error FROM outbox").fetchone()[0] is not None, 10)
            (next_at,) = store.db.execute("SELECT next_at FROM outbox").fetchone()
            assert next_at >= clock.now + UNSURE_WAIT - 1  # not one retry a second
            assert sink.requests == 1
            clock.now = next_at + 1
            worker.wake()
            assert wait_for(lambda: outbox.counts()["hook"]["dead"] == 1, 10)
        finally:
            worker.stop(5)
    assert sink.requests == 2
    assert len(dead) == 1 and "may have arrived" in dead[0]


def test_a_failure_goes_ahead_of_a_storm_and_is_never_folded(state, tmp_path):
    with HttpSink() as sink:
        store, outbox, worker = worker_for(state, tmp_path, sink, rate=parse_rate("5/3s"))
        queue(store, outbox, 300)
        queue(store, outbox, 1, severity="failure", prefix="down")
        worker.start()
        try:
            assert wait_for(lambda: sink.posts, 10)
        finally:
            worker.stop(5)
    assert sink.posts[0]["title"] == "down0"


def test_plan_sends_failures_alone_first_and_waits_rather_than_fold_them():
    waiting = ["a", "b", "F1", "c", "F2", "F3"]
    urgent = [w.startswith("F") for w in waiting]
    assert plan(waiting, 3, urgent=urgent) == [["F1"], ["F2"], ["F3"]]
    assert plan(waiting, 5, urgent=urgent) == [["F1"], ["F2"], ["F3"], ["a"], ["b", "c"]]
    assert plan(waiting, 2, urgent=urgent) == [["F1"], ["F2"]]
