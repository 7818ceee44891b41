"""`alertd status`: what the running agent last recorded in its state file.

It only reads, so it is safe next to a running agent (SQLite WAL lets readers in).
"""

from __future__ import annotations

import sqlite3
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, TextIO

from alertd.cli.silence import line as silence_line
from alertd.delivery.outbox import counts as outbox_counts
from alertd.delivery.outbox import pending as outbox_pending
from alertd.runtime.leader import STALE
from alertd.shaping.silence import active as active_silences
from alertd.storage.engine import MissingDriver, exists, open_reader
from alertd.storage.location import Location, is_postgres
from alertd.storage.lockfile import lock_holder

if TYPE_CHECKING:
    from alertd.runtime.leader import NodeRow

    Cluster = tuple[int | None, list[NodeRow]]



def _ago(ts: float | None, now: float) -> str:
    if ts is None:
        return "never"
    when = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
    return f"{when} ({now - ts:.0f} s ago)"


def _cluster(db: sqlite3.Connection, state_path: Location) -> Cluster | None:
    """Who leads and who stands by, on a PostgreSQL state; None for an SQLite file."""
    if not is_postgres(state_path):
        return None
    from alertd.runtime.leader import leader

    return leader(db)


def _leader_name(cluster: Cluster) -> str | None:
    backend, nodes = cluster
    return next((n.node for n in nodes if backend is not None and n.backend == backend
                 and n.role == "leader"), None if backend is None else f"backend {backend}")


def report(state_path: Location, out: TextIO | None = None, now: float | None = None) -> int:
    """Print streams, outbox counts and dropped frames; 1 if there is no state file yet."""
    out = sys.stdout if out is None else out
    if not exists(state_path):
        print(f"{state_path}: no state file yet; has alertd run with this config?", file=out)
        return 1
    now = time.time() if now is None else now
    try:
        db = open_reader(state_path)
        try:
            health = db.execute("SELECT source, exchange, state, last_frame, connects, updated "
                                "FROM health ORDER BY source").fetchall()
            per_notifier = outbox_counts(db)
            drops = db.execute("SELECT source, reason, count, example FROM drops "
                               "ORDER BY source, reason").fetchall()
            silenced = active_silences(db, now)
            cluster = _cluster(db, state_path)
        finally:
            db.close()
    except MissingDriver as exc:
        print(f"{state_path}: {exc}", file=out)
        return 1
    except sqlite3.Error as exc:
        what = "cannot read the state database" if is_postgres(state_path) else (
            "not an alertd state file")
        print(f"{state_path}: {what} ({exc}); check the path, or the `state:` line of the "
              "config", file=out)
        return 1
    updated = max((row[5] for row in health), default=None)
    print(f"state: {state_path}, last written by alertd: {_ago(updated, now)}", file=out)
    if cluster is None:
        holder = lock_holder(Path(state_path))
        print(f"alertd: running (pid {holder})" if holder else "alertd: not running", file=out)
    else:
        holder = _leader_name(cluster)
        print(f"alertd: led by {holder}" if holder else "alertd: no leader (no alertd holds "
              "the lock)", file=out)
        print("nodes:", file=out)
        for n in cluster[1]:
            role = "leader" if n.node == holder else (
                "standby" if n.role != "stopped" and now - n.heartbeat < STALE else
                "stopped" if n.role == "stopped" else "gone")
            print(f"  {n.node:<24} {role:<8} heartbeat {_ago(n.heartbeat, now)}, "
                  f"{n.failovers} takeovers", file=out)
        if not cluster[1]:
            print("  none recorded yet", file=out)
    if updated is not None and now - updated > 60:
        print("  (not updated for over a minute: " + (
            "alertd runs but cannot write its state file? disk full or read-only; see its log)"
            if holder else "is alertd running?)"), file=out)
    print("streams:", file=out)
    for source, exchange, state, last_frame, connects, _ in health:
        print(f"  {source:<24} {exchange:<10} {state:<13} last frame {_ago(last_frame, now)}, "
              f"{connects} connects", file=out)
    if not health:
        print("  none recorded yet", file=out)
    print("outbox (alerts per notifier; folded: sent inside a digest):", file=out)
    for notifier, c in per_notifier.items():
        print(f"  {notifier:<24} pending {c['pending']:<6} delivered {c['delivered']:<8} "
              f"folded {c['folded']:<6} dead {c['dead']}", file=out)
    if not per_notifier:
        print("  no alerts yet", file=out)
    print("rejected frames:", file=out)
    for source, reason, n, example in drops:
        print(f"  {source:<24} {reason:<15} {n:<8} e.g. {example}", file=out)
    if not drops:
        print("  none", file=out)
    print("silences (active; silenced: alerts held, never sent):", file=out)
    for silence in silenced:
        print(silence_line(silence, now), file=out)
    if not silenced:
        print("  none", file=out)
    return 0


OK, WARNING, CRITICAL, UNKNOWN = 0, 1, 2, 3
"""The monitoring-plugin exit codes (Nagios, Icinga, monit, cron wrappers, container checks)."""
STALE_AFTER = 120.0
"""alertd writes its state file at least every 5 s; this long without a write is a stall."""
PENDING_TOO_LONG = 600.0
"""An alert still not delivered this long after it was raised is worth a look."""


def check(state_path: Location, now: float | None = None, out: TextIO | None = None) -> int:
    """One line and the plugin exit code: CRITICAL when alertd is not running, its state
    file is stale, or a stream is down or rejected; WARNING when a catch-up failed, an alert
    waits too long or was given up on in the last day; UNKNOWN when there is no readable
    state file; OK otherwise."""
    out = sys.stdout if out is None else out
    now = time.time() if now is None else now
    if not exists(state_path):
        print(f"UNKNOWN: no state file at {state_path}", file=out)
        return UNKNOWN
    try:
        db = open_reader(state_path)
        try:
            health = db.execute("SELECT source, state, updated FROM health").fetchall()
            oldest = min((at for _, at in outbox_pending(db).values()), default=None)
            dead = db.execute("SELECT COUNT(*) FROM outbox WHERE status='dead' AND done_at>?",
                              (now - 86400,)).fetchone()[0]
            cluster = _cluster(db, state_path)
        finally:
            db.close()
    except (sqlite3.Error, MissingDriver) as exc:
        print(f"UNKNOWN: {state_path} is not an alertd state file ({exc})", file=out)
        return UNKNOWN
    critical, warning = [], []
    standby = ""
    if cluster is None:
        if lock_holder(Path(state_path)) is None:
            critical.append("alertd is not running")
    else:
        holder = _leader_name(cluster)
        if holder is None:
            critical.append("no alertd leads (none holds the lock)")
        standbys = [n.node for n in cluster[1] if n.node != holder and n.role == "standby"
                    and now - n.heartbeat < STALE]
        if holder is not None:  # a standby is fine: it takes over if the leader goes
            standby = f", led by {holder}; standby: {', '.join(standbys) or 'none'}"
    updated = max((row[2] for row in health), default=None)
    if updated is not None and now - updated > STALE_AFTER:
        critical.append(f"state file not written for {now - updated:.0f} s")
    down = sorted(s for s, state, _ in health if state in ("disconnected", "rejected"))
    if down:
        critical.append(f"streams down: {', '.join(down)}")
    behind = sorted(s for s, state, _ in health if state == "catch_up_failed")
    if behind:
        warning.append(f"catch-up failing: {', '.join(behind)}")
    silent = sorted(s for s, state, _ in health if state == "silent")
    if silent:
        warning.append(f"streams connected but sending nothing: {', '.join(silent)}")
    if oldest is not None and now - oldest > PENDING_TOO_LONG:
        warning.append(f"an alert pending for {now - oldest:.0f} s")
    if dead:
        warning.append(f"{dead} alerts given up on in the last day")
    up = sum(1 for _, state, _ in health if state == "connected")
    queued = sum(1 for _, state, _ in health if state == "catch_up_queued")
    summary = f"{up}/{len(health)} streams connected" + (
        f", {queued} waiting their turn for a catch-up" if queued else "")
    if critical:
        print(f"CRITICAL: {'; '.join(critical + warning)} ({summary})", file=out)
        return CRITICAL
    if warning:
        print(f"WARNING: {'; '.join(warning)} ({summary})", file=out)
        return WARNING
    print(f"OK: {summary}, alertd running{standby}", file=out)
    return OK
