"""The last level of every subject is stored with the state: reminders go on after a restart,
and a rule a reload adds sees an account that is already down."""

from __future__ import annotations

from alertd.rules.load import load_rules
from alertd.runtime.pipeline import Pipeline
from alertd.sim.frames import dd_balance
from alertd.storage.store import Store
from tests.conftest import MAIN, Clock, write

LOW = """
rules:
  - name: low
    on: balance
    when: {asset: ada, free: {lt: 500}}
    repeat: 4h
    group_wait: 0
    notify: [t]
    title: "low {free}"
"""
DOWN = LOW + """
  - name: down
    on: stream
    when: {status: disconnected}
    group_wait: 0
    notify: [t]
    title: "down {account}"
"""


def make(state, tmp_path, clock, text: str) -> Pipeline:
    write(tmp_path / "rules" / "r.yaml", text)
    return Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(state, clock=clock),
                    clock=clock)


def test_a_reminder_after_a_restart_needs_no_new_frame(state, tmp_path):
    clock = Clock(1_790_000_000.0)
    p = make(state, tmp_path, clock, LOW)
    assert [a.title for a in p.raw(MAIN, dd_balance("120"))] == ["low 120"]
    p.store.close()
    clock.now += 4 * 3600 + 60
    again = make(state, tmp_path, clock, LOW)  # restarted; the exchange has said nothing since
    assert [a.title for a in again.remind()] == ["Still: low 120"]


def test_a_reload_that_adds_a_stream_rule_hears_of_an_account_already_down(state, tmp_path):
    clock = Clock(1_790_000_000.0)
    p = make(state, tmp_path, clock, LOW)
    assert p.stream_status(MAIN, "disconnected", "unreachable for 120 s") == []
    write(tmp_path / "rules" / "r.yaml", DOWN)
    added = p.swap_rules(load_rules(tmp_path / "rules", ["t"]))
    assert [a.title for a in added] == ["down main"]


def test_a_rolled_back_frame_leaves_no_level_behind(state, tmp_path):
    clock = Clock(1_790_000_000.0)
    p = make(state, tmp_path, clock, LOW)
    try:
        with p.store.transaction():
            p.raw(MAIN, dd_balance("120"))
            raise RuntimeError("a bug after the frame, in its transaction")
    except RuntimeError:
        pass
    assert p.detector.last.all() == []


def test_a_resolved_notice_never_overtakes_the_alert_it_resolves(state, tmp_path):
    clock = Clock(1_790_000_000.0)
    p = make(state, tmp_path, clock, """
rules:
  - name: low
    on: balance
    when: {asset: ada, free: {lt: 500}}
    resolved: true
    group_wait: 2s
    notify: [t]
    title: "low {free}"
""")
    p.raw(MAIN, dd_balance("120"))   # waits in its group for 2 s
    clock.now += 0.5
    p.raw(MAIN, dd_balance("600"))   # recovered before the group left
    p.flush()
    titles = [r[0] for r in p.store.db.execute("SELECT title FROM outbox ORDER BY id")]
    assert titles == ["low 120", "Resolved: low 600"]


def test_repeat_on_a_stream_rule_reminds_while_the_account_stays_down(state, tmp_path):
    clock = Clock(1_790_000_000.0)
    p = make(state, tmp_path, clock, LOW + """
  - name: down
    on: stream
    when: {status: disconnected}
    repeat: 1h
    group_wait: 0
    notify: [t]
    title: "down {account}"
""")
    assert [a.title for a in p.stream_status(MAIN, "disconnected", "unreachable")] == [
        "down main"]
    clock.now += 3600 + 60
    assert [a.title for a in p.remind()] == ["Still: down main"]
