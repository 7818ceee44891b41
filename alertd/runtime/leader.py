"""One leader on a PostgreSQL state, fenced by its session; every other alertd is a standby.

Each alertd tries `pg_try_advisory_lock(LOCK_KEY)` on a session of its own; the one holding it
leads, and that session is its Store's only writing connection (the core thread writes
everything through it, the delivery workers' marks included), so a leader whose session ended
can neither commit nor, since each send is checked against that session first (`may_send`),
send. A standby holds no exchange socket and no delivery worker (it cannot send, and has
nothing to keep warm that the catch-up after taking over does not restore); it polls the lock
every POLL seconds. Taking the lock runs the normal start: every stream connects and catches
up over REST as after a reconnect, the workers deliver what the old leader left pending.

A leader stops at once when its session is lost: a write or commit failing with the session
gone, the lock no longer held by its session (checked every WATCH seconds on a second
session), or that second session unable to reach the server for WATCH_TIMEOUT. The server
ends the session of a leader that died with its machine within about 11 s (TCP keepalives,
storage/postgres.py), so a standby takes over within about 12 s of a crash, at once (POLL)
after a process is killed. Each alertd writes its own row of `nodes` (name, role, heartbeat)
on the second session: the one write a standby makes, and only to its own row.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from alertd.common.errors import LoadError
from alertd.config.load import Config
from alertd.config.metrics import MetricsSpec
from alertd.runtime import sdnotify
from alertd.storage.engine import connect_postgres, open_postgres
from alertd.storage.location import StateURL

if TYPE_CHECKING:
    from alertd.runtime.agent import Agent

log = logging.getLogger("alertd")

LOCK_KEY = 0x616C657274640002
"""The advisory lock whose holder leads (one per database: each state database its leader)."""
POLL = 1.0
"""How often a standby tries the lock, and a leader checks it still holds it."""
WATCH_TIMEOUT = 5.0
"""A leader that cannot ask the server for this long stops writing and sending."""
STALE = 15.0
"""A node row whose heartbeat is older than this belongs to an alertd that is gone."""


@dataclass(frozen=True)
class NodeRow:
    node: str
    role: str
    backend: int | None
    heartbeat: float
    started: float
    failovers: int


def node_name(config: Config) -> str:
    """`node:` from the config, else host:pid (two alertd on one host are two nodes)."""
    return config.node or f"{socket.gethostname()}:{os.getpid()}"


def lock_backend(db: Any) -> int | None:
    """The server process of the session holding the leader's lock, or None: no leader."""
    row = db.execute(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
        "AND ((classid::bigint << 32) | objid::bigint) = ? AND database = "
        "(SELECT oid FROM pg_database WHERE datname = current_database())",
        (LOCK_KEY,)).fetchone()
    return None if row is None else int(row[0])


def read_nodes(db: Any) -> list[NodeRow]:
    """Every node row, the latest heartbeat first."""
    return [NodeRow(*row) for row in db.execute(
        "SELECT node, role, backend, heartbeat, started, failovers FROM nodes "
        "ORDER BY heartbeat DESC, node")]


def leader(db: Any) -> tuple[int | None, list[NodeRow]]:
    """(backend holding the lock, node rows), for `alertd status`."""
    return lock_backend(db), read_nodes(db)


class Node:
    """This alertd on a PostgreSQL state: a standby until it holds the lock, then an Agent
    built on the session that holds it, and a standby again if that session is lost."""

    def __init__(self, url: StateURL, name: str, build: Callable[[Any, Node], Agent],
                 clock: Callable[[], float] = time.time, poll: float = POLL,
                 metrics: MetricsSpec | None = None) -> None:
        self.url, self.name, self._build, self.clock, self.poll = url, name, build, clock, poll
        self.metrics = metrics
        """Served while standing by too (role and takeovers); the agent serves them leading."""
        self.role = "standby"
        self.failovers = 0
        """Times this node took over from another leader (the metric)."""
        self.agent: Agent | None = None
        self._stop = threading.Event()
        self._fenced = threading.Event()
        self._demoted = threading.Event()
        self._started = clock()
        self._watch: Any = None
        self._schema_checked = False
        self._main: Any = None
        self.unfinished = False
        """The last agent stopped with a send in flight (see Agent.unfinished)."""

    # --- what the CLI and the agent call -----------------------------------------------------

    def request_stop(self) -> None:
        self._stop.set()
        agent = self.agent
        if agent is not None:
            agent.request_stop()

    def request_reload(self) -> None:
        agent = self.agent
        if agent is not None:
            agent.request_reload()  # a standby reads the files afresh when it takes over

    def may_send(self) -> bool:
        """Whether a delivery worker may send now: this node leads and its session answers
        (checked on that session itself, so a send is never made after it ended)."""
        agent = self.agent
        if self._fenced.is_set() or agent is None:
            return False
        try:
            with agent.store.lock:
                agent.store.db.execute("SELECT 1").fetchone()
        except Exception as exc:
            self.lost(f"its database session failed ({exc})")
            return False
        return True

    def lost(self, reason: str) -> None:
        """The session that holds the lock is gone, or cannot be vouched for: stop sending at
        once, stop writing, and go back to standing by. Safe from any thread, once."""
        if self._fenced.is_set():
            return
        self._fenced.set()
        self._demoted.set()
        log.error("alertd on %s no longer leads: %s; it stops sending and writing, and stands "
                  "by", self.name, reason)
        agent = self.agent
        if agent is not None:
            agent.request_stop()

    @property
    def fenced(self) -> bool:
        """Told it no longer leads: nothing more may be sent or written."""
        return self._fenced.is_set()

    def session_lost(self) -> bool:
        """Whether the leader's writing session is gone (then a stall is a lost lead)."""
        main = self._main
        return main is not None and bool(getattr(main, "lost", False))

    # --- the loop --------------------------------------------------------------------------

    def run(self) -> int:
        code = 0
        try:
            while not self._stop.is_set():
                main = self._wait_for_lock()
                if main is None:
                    break
                code = self._lead(main)
                if not self._demoted.is_set():
                    break  # stopped (a signal), or the agent exits on its own (a code)
                self._demoted.clear()
                self._fenced.clear()
                self.role = "standby"
                log.warning("alertd on %s is a standby again; it takes over when the lock is "
                            "free", self.name)
        finally:
            self._stepped_down()
        return code

    def _wait_for_lock(self) -> Any:
        """Poll the lock until it is ours (that session returned) or we are told to stop."""
        server = self._standby_metrics()
        try:
            return self._poll_lock()
        finally:
            if server is not None:
                server.stop()

    def _standby_metrics(self) -> Any:
        """A standby's metrics endpoint (role, takeovers), until it leads."""
        if self.metrics is None:
            return None
        from alertd.runtime.metrics import MetricsServer
        server = MetricsServer(None, self.metrics, node=self)
        return server if server.start() else None

    def _poll_lock(self) -> Any:
        candidate: Any = None
        said = failing = False
        sdnotify.notify(f"READY=1\nSTATUS=standby ({self.name}): waiting for the leader's lock")
        watchdog = sdnotify.watchdog_interval()
        while not self._stop.is_set():
            if watchdog:  # a standby is alive too: systemd must not restart it for waiting
                sdnotify.notify("WATCHDOG=1")
            self._beat("standby", None)
            try:
                if candidate is None or candidate.lost:
                    candidate = connect_postgres(self.url, "alertd-leader")
                if candidate.execute("SELECT pg_try_advisory_lock(?)",
                                     (LOCK_KEY,)).fetchone()[0]:
                    return candidate
                if not said:
                    log.info("alertd on %s stands by: another alertd leads", self.name)
                    said = True
                failing = False
            except Exception as exc:
                if candidate is not None:
                    candidate.close()
                candidate = None
                if not failing:
                    log.warning("standby %s: cannot reach the database to try the lock (%s); "
                                "trying again every %g s", self.name, exc, self.poll)
                failing = True
            self._stop.wait(self.poll)
        if candidate is not None:
            candidate.close()
        return None

    def _lead(self, main: Any) -> int:
        self._main = main
        try:
            agent = self._build(main, self)
            previous = self._previous(agent)
        except LoadError:  # the files no longer load: said, and this alertd exits
            main.close()
            raise
        except Exception as exc:  # the database failed as we took over: stand by again
            log.error("alertd on %s could not take over (%s); it stands by", self.name, exc)
            main.close()
            self._demoted.set()
            return 0
        self.agent = agent
        if self._stop.is_set():  # told to stop while it was taking over
            agent.request_stop()
        self.role = "leader"
        if previous is not None:
            self.failovers += 1
        self._beat("leader", main.backend)
        watcher = threading.Thread(target=self._watch_lock, args=(main.backend,),
                                   name="leader-watch", daemon=True)
        watcher.start()
        log.info("alertd on %s leads%s", self.name,
                 f" (took over from {previous})" if previous else "")
        try:
            code = agent.run(after_start=None if previous is None else (
                lambda: agent.took_over(self.name, previous)))
        finally:
            self.unfinished = agent.unfinished
            self.agent = None
            self._main = None
            watcher.join(self.poll + WATCH_TIMEOUT + 1)
        return code

    def _previous(self, agent: Agent) -> str | None:
        """The node that led before, as the database says, recording this one in its place
        (a write on the leader's session, so only a leader makes it)."""
        store = agent.store
        with store.transaction():
            row = store.db.execute("SELECT value FROM meta WHERE key='leader'").fetchone()
            store.db.execute("INSERT OR REPLACE INTO meta VALUES ('leader', ?)", (self.name,))
        return None if row is None or row[0] == self.name else str(row[0])

    def step_down(self, store: Any) -> None:
        """A planned stop of the leader: no longer named the one that leads (written on its
        own session, so only while it holds the lock), so the next start is no takeover."""
        with store.transaction():
            store.db.execute("DELETE FROM meta WHERE key='leader' AND value=?", (self.name,))

    def _watch_lock(self, backend: int) -> None:
        """While leading: heartbeat, and make sure the lock is still our session's."""
        failing_since: float | None = None
        while self.agent is not None and not self._fenced.is_set():
            try:
                db = self._watch_db()
                holder = lock_backend(db)
                self._beat("leader", backend)
                failing_since = None
                if holder != backend:
                    self.lost("its database session ended (the lock is "
                              + ("free" if holder is None else "another session's") + ")")
                    return
            except Exception as exc:
                self._drop_watch()
                now = time.monotonic()
                failing_since = failing_since or now
                if now - failing_since >= WATCH_TIMEOUT or self.session_lost():
                    self.lost(f"the database cannot be reached ({exc})")
                    return
            self._fenced.wait(self.poll)

    # --- this node's row ---------------------------------------------------------------------

    def _watch_db(self) -> Any:
        if self._watch is None or self._watch.lost:
            self._drop_watch()
            if self._schema_checked:  # a reconnect: the schema is there, nothing to write
                self._watch = connect_postgres(self.url, "alertd-watch")
            else:  # the first node up may find no schema yet for its row
                self._watch = open_postgres(self.url, name="alertd-watch")
                self._schema_checked = True
        return self._watch

    def _drop_watch(self) -> None:
        if self._watch is not None:
            self._watch.close()
            self._watch = None

    def _beat(self, role: str, backend: int | None) -> None:
        """Write this node's own row (the only write a standby makes), on its own session."""
        try:
            self._watch_db().execute(
                "INSERT OR REPLACE INTO nodes VALUES (?, ?, ?, ?, ?, ?)",
                (self.name, role, backend, self.clock(), self._started, self.failovers))
        except Exception as exc:
            self._drop_watch()
            log.debug("node %s: heartbeat not written (%s)", self.name, exc)

    def _stepped_down(self) -> None:
        """Stopped: our own row says so."""
        sdnotify.notify("STOPPING=1")
        try:
            db = self._watch_db()
            db.execute("UPDATE nodes SET role='stopped', backend=NULL, heartbeat=? WHERE node=?",
                       (self.clock(), self.name))
        except Exception as exc:
            log.warning("node %s: could not record its stop (%s)", self.name, exc)
        self._drop_watch()
