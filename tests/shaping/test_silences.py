"""Silences through the pipeline, on a fake clock: what they hold, what they count, and what a
level's firing and resolved notice do across a silence's end (see README "Silences")."""

from __future__ import annotations

import json
import logging
from contextlib import closing
from decimal import Decimal
from pathlib import Path

from alertd.domain.alerts import Alert
from alertd.rules.load import load_rules
from alertd.runtime.pipeline import Pipeline
from alertd.shaping import silence as silences
from alertd.shaping.silence import Silence, equal
from alertd.sim.frames import dd_balance, dd_order, sx, sx_trade
from alertd.storage.store import FORGET_AFTER, Store
from tests.conftest import MAIN, SPOT, Clock, write

RULES = """
rules:
  - name: fills
    on: fill
    notify: [t]
    group_wait: 0
    title: "fill {account} {symbol} {qty}"
  - name: low-ada
    on: balance
    when: {asset: ada, free: {lt: 500}}
    resolved: true
    repeat: 1h
    notify: [t]
    group_wait: 0
    title: "low ada {free}"
"""
HOUR = 3600.0


def pipeline(state, tmp_path: Path, clock: Clock) -> Pipeline:
    write(tmp_path / "rules" / "r.yaml", RULES)
    store = Store(state, clock=clock)
    return Pipeline(load_rules(tmp_path / "rules", ["t"]), store, clock=clock)


def feed(p: Pipeline, src, frame) -> None:
    """One frame, committed: another connection (the CLI) can write the file after it."""
    p.raw(src, frame if isinstance(frame, str) else json.dumps(frame))
    p.store.flush()


def silence(p: Pipeline, rule: str, seconds: float = HOUR, account: str | None = None,
            match: tuple[tuple[str, str], ...] = ()) -> int:
    """Added the way `alertd silence add` adds it: on a connection of its own."""
    with closing(p.store.connect()) as db:
        return silences.add(db, rule, account, match, seconds, "", p.clock()).id


def expire(p: Pipeline, silence_id: int) -> None:
    with closing(p.store.connect()) as db:
        silences.expire(db, silence_id, p.clock())


def sent(p: Pipeline) -> list[str]:
    return [r[0] for r in p.store.db.execute("SELECT title FROM outbox ORDER BY id")]


def counts(p: Pipeline) -> dict[int, int]:
    return dict(p.store.db.execute("SELECT id, silenced FROM silences"))


def fill(order: str, qty: str, at: float) -> dict:
    return dd_order(order, "partially_filled", [(f"{order}-1", qty)], qty, at=at)


def test_a_silence_holds_matching_alerts_counts_them_and_lets_the_others_through(state,
        tmp_path, caplog):
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    feed(p, MAIN, fill("o1", "800", clock.now))  # before: sent (and the silences were read)
    sid = silence(p, "fills", account="main", match=(("symbol", "adausdm"), ("qty", "100.0")))
    with caplog.at_level(logging.INFO, "alertd"):
        feed(p, MAIN, fill("o2", "100", clock.now))       # matches: held
        feed(p, MAIN, fill("o3", "300", clock.now))       # another qty: sent
        feed(p, SPOT, sx("accountTrade", sx_trade(1, "100", at=clock.now)))  # another account
    assert sent(p) == ["fill main ADAUSDM 800", "fill main ADAUSDM 300",
                       "fill desk vBTC_vUSDC 100"]
    assert counts(p) == {sid: 1}
    assert f"silenced fills by silence {sid}: fill main ADAUSDM 100" in caplog.messages
    clock.now += 60
    expire(p, sid)  # ended from the command line: the next one goes out
    feed(p, MAIN, fill("o4", "100", clock.now))
    assert sent(p)[-1] == "fill main ADAUSDM 100"
    assert counts(p) == {sid: 1}


def test_a_silence_ends_on_its_own_at_its_time(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    silence(p, "fills", seconds=HOUR)
    clock.now += HOUR - 1
    feed(p, MAIN, fill("o1", "1", clock.now))
    clock.now += 1
    feed(p, MAIN, fill("o2", "2", clock.now))
    assert sent(p) == ["fill main ADAUSDM 2"]


def test_alertd_s_own_failure_notices_are_never_silenced(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    sid = silence(p, "alertd")  # the CLI refuses this; the pipeline would not obey it anyway
    p.system_alert("alertd: reload failed", "r.yaml:3: ...", "failure", ["t"])
    assert sent(p) == ["alertd: reload failed"]
    assert counts(p) == {sid: 0}
    own = Alert("alertd", "system", "-", "failure", "t", "b", ("t",))
    assert not Silence(1, "alertd", None, (), 0, 1e12).matches(own, None)


def test_a_silenced_level_that_recovers_inside_the_silence_says_nothing_at_all(state, tmp_path,
                                                                               caplog):
    """Its resolved notice is held with its firing: nothing was said, so nothing resolves."""
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    sid = silence(p, "low-ada", account="main")
    with caplog.at_level(logging.INFO, "alertd"):
        feed(p, MAIN, dd_balance("420"))
        clock.now += 600
        feed(p, MAIN, dd_balance("600"))
    clock.now += HOUR
    assert p.end_silences() == []
    assert sent(p) == []
    assert counts(p) == {sid: 2}
    assert caplog.messages == [f"silenced low-ada by silence {sid}: low ada 420",
                               f"silenced low-ada by silence {sid}: Resolved: low ada 600"]


def test_a_silenced_level_still_holding_when_the_silence_ends_is_said_then_once(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    sid = silence(p, "low-ada", seconds=3 * HOUR)
    feed(p, MAIN, dd_balance("420"))
    feed(p, MAIN, dd_balance("410"))  # still low: edge-triggered, nothing new
    clock.now += 2 * HOUR  # a reminder falls inside the silence: held too
    assert p.remind() == []
    assert p.end_silences() == []
    clock.now += HOUR
    assert [a.title for a in p.end_silences()] == ["low ada 410"]  # with the last value seen
    assert p.end_silences() == []
    assert sent(p) == ["low ada 410"]
    assert counts(p) == {sid: 2}
    assert p.remind() == []  # reminders count from when it was said
    feed(p, MAIN, dd_balance("600"))
    assert sent(p)[-1] == "Resolved: low ada 600"  # its firing was said: so is its end


def test_a_level_said_before_the_silence_has_its_resolved_notice_sent_inside_it(state, tmp_path):
    """The trader was told it fired, so is told it ended (Alertmanager's lost resolved
    notice); the next firing inside the silence is held, and its resolved notice with it."""
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    feed(p, MAIN, dd_balance("420"))
    sid = silence(p, "low-ada")
    feed(p, MAIN, dd_balance("600"))
    feed(p, MAIN, dd_balance("300"))
    feed(p, MAIN, dd_balance("700"))
    assert sent(p) == ["low ada 420", "Resolved: low ada 600"]
    assert counts(p) == {sid: 2}


def test_a_silence_that_ended_while_alertd_was_down_is_acted_on_at_start(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    silence(p, "low-ada", seconds=HOUR)
    feed(p, MAIN, dd_balance("420"))
    p.store.close()
    clock.now += 2 * HOUR
    again = pipeline(state, tmp_path, clock)
    assert [a.title for a in again.end_silences()] == ["low ada 420"]
    assert sent(again) == ["low ada 420"]


def test_another_silence_in_force_at_the_end_holds_the_level_in_its_turn(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    first = silence(p, "low-ada", seconds=HOUR)
    feed(p, MAIN, dd_balance("420"))
    second = silence(p, "low-ada", seconds=3 * HOUR)
    clock.now += HOUR
    assert p.end_silences() == []
    clock.now += 2 * HOUR
    assert [a.title for a in p.end_silences()] == ["low ada 420"]
    assert counts(p) == {first: 1, second: 1}


def test_ended_silences_are_kept_a_month_for_list_then_forgotten(state, tmp_path):
    clock = Clock()
    p = pipeline(state, tmp_path, clock)
    old = silence(p, "fills", seconds=60)
    clock.now += FORGET_AFTER
    new = silence(p, "fills", seconds=60)
    assert p.prune(frozenset()) == 0
    clock.now += 120
    assert p.prune(frozenset()) == 1
    assert list(counts(p)) == [new] and old != new


def test_matchers_compare_as_rules_do():
    assert equal("ADAUSDM", "adausdm") and not equal("ADAUSDM", "ada")
    assert equal(Decimal("1000"), "1000.00") and not equal(Decimal("1000"), "x")
    assert equal(True, "yes") and equal(False, "false") and not equal(True, "no")
    assert not equal(None, "")
