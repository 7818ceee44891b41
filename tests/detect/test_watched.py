"""'First look' is a stored fact: housekeeping or a failed first catch-up cannot turn a gap's
fills into history."""

from __future__ import annotations

import json

from alertd.rules.load import load_rules
from alertd.runtime.pipeline import Pipeline
from alertd.sim.frames import sx, sx_balances, sx_order, sx_trade
from alertd.storage.store import Store
from tests.conftest import PERPS, SPOT, Clock, write

DAY = 86400.0
RULES = """
rules:
  - name: fills
    on: fill
    notify: [t]
    group_wait: 0
    title: "fill {trade_id} caught_up={caught_up}"
"""


def pipeline(tmp_path, clock) -> Pipeline:
    write(tmp_path / "rules" / "r.yaml", RULES)
    return Pipeline(load_rules(tmp_path / "rules", ["t"]), Store(tmp_path / "s.db", clock=clock),
                    clock=clock)


def titles(alerts) -> list[str]:
    return [a.title for a in alerts]


def trade_frames(n: int, at: float) -> list[dict]:
    return [{"channel": "accountOrderUpdate", "type": "update",
             "data": [{**sx_order("NEW", "0", at=at), "i": 8000 + n}]},
            {"channel": "accountTrade", "type": "update",
             "data": [{**sx_trade(n, "0.1", at=at), "i": 8000 + n}]}]


def test_an_account_emptied_by_housekeeping_still_hears_of_a_gap_s_fills(tmp_path):
    clock = Clock(1_790_000_000.0)
    p = pipeline(tmp_path, clock)
    assert titles(p.raw(SPOT, sx("accountTrade", sx_trade(1, "0.1", at=clock.now)))) == [
        "fill vBTC_vUSDC:1 caught_up=no"]
    p.store.flush()
    clock.now += 100 * DAY  # idle for months: housekeeping forgets every order and fill
    p.prune(frozenset({"filled"}))
    assert p.store.db.execute("SELECT COUNT(*) FROM fills").fetchone()[0] == 0
    gap = clock.now - 3600
    out = p.catch_up(SPOT, trade_frames(2, at=gap + 60), watched_since=clock.now)
    assert titles(out) == ["fill vBTC_vUSDC:2 caught_up=yes"]


def test_after_a_failed_first_catch_up_the_live_snapshot_is_the_first_look(tmp_path):
    clock = Clock(1_790_000_000.0)
    p = pipeline(tmp_path, clock)
    state = sx("accountState", {"B": sx_balances("100", at=clock.now)["B"]}, kind="snapshot")
    assert p.raw(SPOT, state) == []  # the first look: balances only, nothing to announce
    p.store.flush()
    clock.now += 600  # a gap; the catch-up after it finds a fill made in it
    out = p.catch_up(SPOT, trade_frames(3, at=clock.now - 300), watched_since=clock.now)
    assert titles(out) == ["fill vBTC_vUSDC:3 caught_up=yes"]
    again = Pipeline(p.rules, Store(tmp_path / "s.db", clock=clock), clock=clock)
    assert again.watched.since(SPOT.key) == 1_790_000_000.0  # stored, not guessed


def test_a_first_catch_up_is_history_and_a_rolled_back_first_look_is_forgotten(tmp_path):
    clock = Clock(1_790_000_000.0)
    p = pipeline(tmp_path, clock)
    out = p.catch_up(SPOT, trade_frames(4, at=clock.now - 300), watched_since=clock.now)
    assert out == []  # before alertd watched: history
    other = PERPS
    try:
        with p.store.transaction():
            p.watched.mark(other.key, clock.now)
            raise RuntimeError("a bug in the same transaction")
    except RuntimeError:
        pass
    assert p.watched.since(other.key) is None
    assert json.loads(json.dumps(p.watched.since(SPOT.key))) == clock.now


def test_a_retried_first_catch_up_does_not_announce_the_day_before_the_first_live_frame(
        tmp_path):
    """The first catch-up failed and the socket came up without it; its retry lists the
    account's last day. What happened before alertd's first live frame is history; what
    happened after it is news (found by the catch-up queue's review)."""
    clock = Clock(1_790_000_000.0)
    p = pipeline(tmp_path, clock)
    assert p.catch_up(SPOT, [], watched_since=clock.now, complete=False) == []  # a part failed
    live = sx("accountState", {"B": sx_balances("100", at=clock.now)["B"]}, kind="snapshot")
    assert p.raw(SPOT, live) == []
    clock.now += 600
    listed = trade_frames(5, at=clock.now - 6 * 3600) + trade_frames(6, at=clock.now - 60)
    out = p.catch_up(SPOT, listed, watched_since=clock.now)
    assert titles(out) == ["fill vBTC_vUSDC:6 caught_up=yes"]
