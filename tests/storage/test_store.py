"""The state file's commit rules, which the delivery guarantees rest on."""

from __future__ import annotations

import sqlite3

import pytest

from alertd.delivery.outbox import Outbox
from alertd.domain.alerts import Alert
from alertd.rules.armed import Armed
from alertd.storage.store import Store

ALERT = Alert(rule="r", kind="fill", account="main", severity="info", title="t", body="b",
              notify=("hook", "mail"))


def test_an_alert_is_invisible_to_workers_until_its_commit_which_wakes_them(state):
    store = Store(state)
    woken: list[set[str]] = []
    store.on_commit = woken.append
    outbox = Outbox(store)
    with store.transaction(defer=True):
        outbox.add(ALERT)
    assert outbox.due("hook") == [] and outbox.next_due("hook") is None and woken == []
    assert store.flush_due_in() is not None
    store.flush()
    assert [d.title for d in outbox.due("hook")] == ["t"] and woken == [{"hook", "mail"}]


def test_a_rolled_back_transaction_leaves_no_alert_behind(state):
    store = Store(state)
    outbox = Outbox(store)
    try:
        with store.transaction(defer=True):
            outbox.add(ALERT)
            raise RuntimeError("a bug while detecting")
    except RuntimeError:
        pass
    store.flush()
    assert outbox.counts() == {} and store.flush_due_in() is None


def test_committed_alerts_stay_visible_after_reopening(state):
    store = Store(state)
    with store.transaction():
        Outbox(store).add(ALERT)
    store.close()
    again = Store(state)
    assert [d.notifier for d in Outbox(again).due("mail")] == ["mail"]


def test_a_retry_survives_the_wall_clock_stepping_back(state):
    now = [2_000_000_000.0]
    store = Store(state, clock=lambda: now[0])
    outbox = Outbox(store)
    with store.transaction():
        outbox.add(ALERT)
    item = outbox.due("hook")[0]
    outbox.retry_later(item.id, "busy", now[0] + 300)
    assert outbox.due("hook") == []
    now[0] -= 3600  # NTP steps the clock back an hour
    assert [d.id for d in outbox.due("hook")] == [item.id]  # due now, not in an hour


def test_housekeeping_forgets_the_armed_state_of_past_invalid_messages_events(state):
    now = [2_000_000_000.0]
    store = Store(state, clock=lambda: now[0])
    armed = Armed(store)
    with store.transaction():
        armed.disarm("r1", "main/spot/stream/invalid/2033-05-18T03:33:20Z")
        armed.disarm("r1", "main/spot/balance/ada")
    now[0] += 2 * 86400
    with store.transaction():
        armed.prune(None, now[0])
    assert [r[0] for r in store.db.execute("SELECT subject FROM disarmed")] == [
        "main/spot/balance/ada"]  # a level still low stays disarmed; an event's row goes


def test_a_failed_read_undoes_its_own_use_only_and_the_frames_before_it_commit(state):
    """On PostgreSQL a failed statement aborts the whole transaction unless a savepoint
    catches it: the frames group-committed before it must not go with it."""
    store = Store(state)
    outbox = Outbox(store)
    with store.transaction(defer=True):
        outbox.add(ALERT)
    with pytest.raises(sqlite3.Error), store.transaction(defer=True):
        store.db.execute("SELECT no_such_column FROM outbox")
    store.flush()
    assert outbox.counts()["hook"]["pending"] == 1
