"""The daemon: sources → pipeline → outbox → delivery workers, and its lifecycle.

It owns the threads and the state file; everything it runs is built from the same parts the
tests and the demo use, with the transport and the notifiers passed in. It tells systemd when
it is ready, proves progress to the watchdog, reloads on SIGHUP and stops cleanly on SIGTERM.
"""

from __future__ import annotations

import dataclasses
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from alertd.common.errors import LoadError, Problem
from alertd.common.redact import safe_text
from alertd.config.load import UNSET, Config, NotifierOptions
from alertd.delivery.notify import Notifier, target_of
from alertd.delivery.outbox import Delivery, Outbox
from alertd.delivery.ratelimit import Rate
from alertd.delivery.worker import DeliveryWorker
from alertd.domain.observations import TERMINAL
from alertd.domain.quiet import Quiet
from alertd.exchanges import catch_up_for, protocols_for
from alertd.ingest.stream import Stream, StreamSettings
from alertd.rules.model import RuleSet
from alertd.runtime import sdnotify
from alertd.runtime.core import Core
from alertd.runtime.health import save_health
from alertd.runtime.heartbeat import Heartbeat
from alertd.runtime.pipeline import Pipeline
from alertd.runtime.ticker import Ticker
from alertd.storage.engine import MissingDriver
from alertd.storage.location import is_postgres
from alertd.storage.lockfile import StateLocked
from alertd.storage.schema import SchemaError
from alertd.storage.store import StateWriteError, Store, write_failure
from alertd.transport.wsclient import connect as ws_connect

if TYPE_CHECKING:
    from alertd.runtime.leader import Node
    from alertd.runtime.metrics import MetricsServer

log = logging.getLogger("alertd")
REPORTS_EVERY = 20
"""How often, in seconds, the schedule of reports is checked: a report is at most this late."""

SILENCES_EVERY = 1.0
"""How often, in seconds, silences are read again and their ends acted on: a level a silence
held is said about this long after the silence ends."""

Loader = Callable[[], tuple[Config, RuleSet, Mapping[str, Notifier]]]
HEALTH_EVERY = 5.0
EXIT_STATE_FILE = 75
"""Exit status (EX_TEMPFAIL) after the state file vanished: systemd's Restart= starts again."""
STALL = 60.0
"""A stream or worker whose loop has not turned for this long is stuck: no watchdog ping."""


def open_store(config: Config, clock: Callable[[], float],
               connection: object | None = None) -> Store:
    """The state file, or a LoadError that says which one and how to fix it; `connection`
    is the PostgreSQL session to write through (the one holding the leader's lock)."""
    try:
        return Store(config.state_path, clock=clock, exclusive=True, connection=connection)
    except (StateLocked, SchemaError, MissingDriver) as exc:
        raise LoadError([Problem(config.path, config.state_line, str(exc))]) from None
    except (OSError, sqlite3.Error) as exc:
        if is_postgres(config.state_path):
            raise LoadError([Problem(config.path, config.state_line, (
                f"cannot use the state database {config.state_path} ({exc}); check the "
                "'state:' URL, the server and the password"))]) from None
        raise LoadError([Problem(config.path, config.state_line, (
            f"cannot open the state file {config.state_path} ({exc}); set 'state:' to a "
            "writable path, or run under systemd with StateDirectory=alertd"))]) from None


def targets(notifiers: Mapping[str, Notifier]) -> dict[str, tuple[str, ...]]:
    """Each notifier's URL targets (none for a notifier that is one destination)."""
    return {name: tuple(getattr(n, "targets", ())) for name, n in notifiers.items()}


def rates(config: Config, name: str) -> dict[str, Rate | None]:
    """Each URL target's rate: the notifier's `rate:`, else its service's default."""
    options = config.notifier_options.get(name, NotifierOptions())
    out = {target_of(url): options.rate_for(url) for url in config.notifiers.get(name, ())}
    out[""] = None if options.rate is UNSET else options.rate
    return out


def quiet_hours(config: Config) -> dict[str, Quiet]:
    return {name: o.quiet for name, o in config.notifier_options.items() if o.quiet is not None}


class Agent:
    """A running alertd: call `start()`, later `stop()`; `run()` does both around a wait."""

    def __init__(self, config: Config, rules: RuleSet, notifiers: Mapping[str, Notifier], *,
                 settings: StreamSettings | None = None,
                 connect: Callable[..., object] = ws_connect,
                 clock: Callable[[], float] = time.time, loader: Loader | None = None,
                 monotonic: Callable[[], float] = time.monotonic,
                 connection: object | None = None, ha: Node | None = None) -> None:
        """`connection` and `ha`: a leader on a PostgreSQL state (runtime/leader.py), writing
        through the session that holds the lock, its workers sending only while it does."""
        self.config = config
        self.ha = ha
        self.settings = settings or StreamSettings(down_after=config.stream_down_after)
        self._connect, self._clock, self._loader = connect, clock, loader
        self.store = open_store(config, clock, connection)
        self.pipeline = Pipeline(rules, self.store, on_queued=self._wake, clock=clock)
        self.pipeline.outbox.targets = targets(notifiers)
        self.pipeline.outbox.quiet = quiet_hours(config)
        self.core = Core(self.pipeline, on_stall=self._stalled, on_resume=self._resumed)
        self.exit_code = 0
        self._lost_file: str | None = None
        self.workers = self._workers(notifiers)
        self.streams = self._streams(config)
        self._stop = threading.Event()
        self._reload = threading.Event()
        self.reload_grace = 10.0
        self.unfinished = False
        """Set by `stop` when a send was still in flight: the process must exit without
        waiting for it (a library's worker threads would hold the exit past systemd's
        TimeoutStopSec, and the row stays pending for the next start)."""
        """Seconds a reload gives a send in flight before the old worker is left to finish."""
        self._ticker = Ticker(monotonic)
        self._ticker.every(6 * 3600, lambda: self._job(self._prune))
        self._ticker.every(HEALTH_EVERY, lambda: self._job(self.save_health))
        self._ticker.every(HEALTH_EVERY, lambda: self._job(self._check_state_file))
        self._ticker.every(60, lambda: self._job(lambda: self.core.submit(self.pipeline.remind)))
        self._silences_queued = threading.Event()
        self._ticker.every(SILENCES_EVERY, lambda: self._job(self._queue_silences))
        self._ticker.every(REPORTS_EVERY, lambda: self._job(
            lambda: self.core.submit(self.pipeline.reports)))
        self._last_watchdog = 0.0
        self.heartbeat: Heartbeat | None = None
        self.metrics: MetricsServer | None = None

    @property
    def rules(self) -> RuleSet:
        """The rules in force: the pipeline's, which a reload swaps."""
        return self.pipeline.rules

    def _workers(self, notifiers: Mapping[str, Notifier]) -> dict[str, DeliveryWorker]:
        return {name: DeliveryWorker(n, Outbox(self.store, own=True, via=self.core.call),
                                     clock=self._clock, rates=rates(self.config, name),
                                     max_age=self.config.delivery_max_age, on_dead=self._dead,
                                     fence=None if self.ha is None else self.ha.may_send)
                for name, n in notifiers.items()}

    def _streams(self, config: Config) -> list[Stream]:
        return [Stream(p, self.core, self.settings, connect=self._connect,  # type: ignore[arg-type]
                       catch_up=catch_up_for(p.account, p.source.market))
                for account in config.accounts for p in protocols_for(account)]

    def _wake(self, notifiers: Iterable[str]) -> None:
        for name in notifiers:
            worker = self.workers.get(name)
            if worker is not None:
                worker.wake()

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._prune()
        self.core.start()
        self.core.submit(self.pipeline.reports)  # one missed while alertd was down: now
        self._start_metrics()
        for worker in self.workers.values():
            worker.start()
        for stream in self.streams:
            stream.start()
        self._start_heartbeat()
        log.info("alertd started: %s, %d streams, notifiers: %s", self.rules.summary(),
                 len(self.streams), ", ".join(self.workers) or "none")
        sdnotify.notify(f"READY=1\nSTATUS={self.rules.summary()}, {len(self.streams)} streams")

    def run(self, after_start: Callable[[], object] | None = None) -> int:
        """Run until `request_stop()` (the CLI wires SIGTERM and SIGINT to it)."""
        self.start()
        if after_start is not None:
            self._job(after_start)
        watchdog = sdnotify.watchdog_interval()
        try:
            while not self._stop.wait(1.0):
                if self._reload.is_set():
                    self._reload.clear()
                    self._job(self.reload)
                self._ticker.run_pending()
                if watchdog and time.monotonic() - self._last_watchdog >= watchdog / 3:
                    self._pet_watchdog()
        finally:
            self.stop()
        return self.exit_code

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop reading, let sends in flight finish within `timeout`, close the state file."""
        if self.ha is None or not self.ha.fenced:  # a leader stepping down runs on, standing by
            sdnotify.notify("STOPPING=1")
        self._stop.set()
        if self.heartbeat is not None:
            self.heartbeat.stop()
        if self.metrics is not None:
            self.metrics.stop()
        deadline = time.monotonic() + timeout
        self._stop_streams(self.streams, deadline)
        self.core.stop(max(0.1, deadline - time.monotonic()))
        self.unfinished = bool(self._stop_workers(self.workers, deadline))
        self._job(self.save_health)
        if self.ha is not None and not self.ha.fenced:  # a planned stop: the next is no takeover
            self._job(lambda: self.ha.step_down(self.store))  # type: ignore[union-attr]
        try:
            if self._lost_file:
                self.store.close_and_restore()
                log.error("state file written back to %s", self.config.state_path)
            else:
                self.store.close()
        except (StateWriteError, OSError, sqlite3.Error) as exc:
            log.error("the state file could not take the last writes (%s); the next start "
                      "catches up over REST", exc)
        log.info("alertd stopped: %d frames, %d alerts", self.pipeline.frames, self.pipeline.alerts)

    @staticmethod
    def _stop_streams(streams: list[Stream], deadline: float) -> None:
        for stream in streams:
            stream.stop()
        for stream in streams:
            stream.join(max(0.1, deadline - time.monotonic()))

    @staticmethod
    def _stop_workers(workers: Mapping[str, DeliveryWorker], deadline: float,
                      reloading: bool = False) -> dict[str, DeliveryWorker]:
        """Stop them all by `deadline`; the ones still sending then are returned."""
        lingering = {}
        for name, worker in workers.items():
            if not worker.stop(max(0.1, deadline - time.monotonic())):
                lingering[name] = worker
                log.warning("%s: a send was still in flight at %s; %s", name,
                            "the reload" if reloading else "shutdown",
                            "the reloaded notifier starts once it has ended" if reloading
                            else "it stays pending and is sent after the next start")
        return lingering

    # --- reload (SIGHUP) --------------------------------------------------------------------

    def reload(self) -> bool:
        """Load config and rules again; if they do not load, keep running the current ones."""
        if self._loader is None:
            log.warning("reload asked for, but this agent has no config to reload from")
            return False
        try:
            config, rules, notifiers = self._loader()
        except Exception as exc:  # whatever stops a reload, the old rules keep running
            if isinstance(exc, LoadError):
                problems = "\n".join(str(p) for p in exc.problems)
                log.error("reload failed; still running the previous config and rules:\n%s",
                          problems)
            else:  # a loader bug, not a mistake in the files: its traceback is for the log
                detail = safe_text(str(exc)) or "no detail"
                problems = f"could not load the files ({type(exc).__name__}: {detail})"
                log.error("reload failed; still running the previous config and rules: %s",
                          problems, exc_info=True)
            self.core.call(
                self.pipeline.system_alert, "alertd: reload failed",
                "Still running the previous config and rules.\n" + problems, "failure",
                tuple(self.workers))
            return False
        if config.state_path != self.config.state_path:
            log.warning("the state file changed to %s; that takes a restart, the current one "
                        "stays in use", config.state_path)
            config = dataclasses.replace(config, state_path=self.config.state_path)
        self.core.call(self.pipeline.swap_rules, rules)
        self.core.call(setattr, self.pipeline.outbox, "targets", targets(notifiers))
        self.core.call(setattr, self.pipeline.outbox, "quiet", quiet_hours(config))
        old_config, self.config = self.config, config
        if (config.notifiers, config.notifier_options, config.delivery_max_age) != (
                old_config.notifiers, old_config.notifier_options, old_config.delivery_max_age) \
                or set(notifiers) != set(self.workers):
            old = self.workers
            counts = self.core.call(Outbox(self.store).counts)
            for name in sorted(set(old) - set(notifiers)):
                pending = counts.get(name, {}).get("pending", 0)
                if pending:
                    log.warning("notifier %s was removed with %d alerts pending; they stay in "
                                "the state file and go out if it comes back", name, pending)
            lingering = self._stop_workers(old, time.monotonic() + self.reload_grace,
                                           reloading=True)
            self.workers = self._workers(notifiers)
            for name, worker in self.workers.items():
                if name in old:  # its counts carry on: a metric never goes back
                    worker.outcomes, worker.latency = old[name].outcomes, old[name].latency
                if name in lingering:
                    worker.start_after(lingering[name])
                else:
                    worker.start()
        self._restart_changed_streams(config, old_config)
        if config.heartbeat != old_config.heartbeat:
            if self.heartbeat is not None:
                self.heartbeat.stop()
            self._start_heartbeat()
        if config.metrics != old_config.metrics or self.metrics is None:
            self._start_metrics()  # moved, or not serving (its port was taken): try again
        log.info("reloaded: %s, %d streams, notifiers: %s", rules.summary(), len(self.streams),
                 ", ".join(self.workers))
        return True

    def _restart_changed_streams(self, config: Config, old: Config) -> None:
        """Only the sockets of accounts that changed are replaced; the others keep reading
        (a reconnect costs a catch-up and a moment in which a fill can only come over REST)."""
        if config.stream_down_after != old.stream_down_after:
            self.settings = dataclasses.replace(self.settings,
                                                down_after=config.stream_down_after)
            changed = set(old.accounts) | set(config.accounts)
        else:
            changed = set(old.accounts) ^ set(config.accounts)
        if not changed:
            return
        going = [s for s in self.streams if s.protocol.account in changed]
        self._stop_streams(going, time.monotonic() + 10)
        new = self._streams(dataclasses.replace(
            config, accounts=tuple(a for a in config.accounts if a in changed)))
        self.streams = [s for s in self.streams if s not in going] + new
        for stream in new:
            stream.start()
        log.info("reload: %d streams replaced, %d kept", len(new), len(self.streams) - len(new))

    # --- health ----------------------------------------------------------------------------

    def stuck(self) -> list[str]:
        """The loops that have not turned recently: streams, delivery workers, the core."""
        now = time.monotonic()
        stuck = [s.source.key for s in self.streams
                 if s.state != "stopped" and now - s.heartbeat > STALL]
        stuck += [name for name, w in self.workers.items()
                  if not w.alive() or now - w.heartbeat > STALL * 2]
        if not self.core.alive() or now - self.core.heartbeat > STALL:
            stuck.append("core (the thread that writes the state file)")
        return stuck

    def healthy(self) -> bool:
        """Every stream and worker loop turned recently: what the systemd watchdog is told.
        A state file that cannot be written is not a reason for systemd to restart alertd
        (a restart frees no disk); the core keeps turning and retries it."""
        stuck = self.stuck()
        if stuck:
            log.error("not making progress: %s", ", ".join(stuck))
            return False
        return True

    def problem(self) -> str | None:
        """Why alertd is not fit to say it is alive, or None: a loop stuck, or a state file
        that cannot be written (then nothing new can be detected or sent durably)."""
        stuck = self.stuck()
        if stuck:
            return "not making progress: " + ", ".join(stuck)
        return self.core.stalled

    def _start_heartbeat(self) -> None:
        spec = self.config.heartbeat
        self.heartbeat = None if spec is None else Heartbeat(spec.url, spec.every, self.problem)
        if self.heartbeat is not None:
            self.heartbeat.start()

    def _start_metrics(self) -> None:
        """Serve the metrics `metrics:` asks for (none if it is unset); prometheus_client is
        imported only then, which saves its start-up time and memory otherwise."""
        if self.metrics is not None:
            self.metrics.stop()
            self.metrics = None
        if self.config.metrics is not None:
            from alertd.runtime.metrics import MetricsServer
            server = MetricsServer(self, self.config.metrics)
            self.metrics = server if server.start() else None

    def _pet_watchdog(self) -> None:
        self._last_watchdog = time.monotonic()
        if self.healthy():
            sdnotify.notify("WATCHDOG=1")

    def save_health(self) -> None:
        """What `alertd status` shows: each stream's state and the dropped frames."""
        streams = [(s.source.key, s.source.exchange, s.state, s.last_frame_wall, s.connects)
                   for s in self.streams]
        self.core.call(lambda: save_health(self.store, streams, self.pipeline.drops.unsaved()))

    def _dead(self, notifier: str, item: Delivery, error: str) -> None:
        if item.rule == "alertd":  # alertd's own notices are not reported again: no loops
            return
        others = [name for name in self.workers if name != notifier]
        self.core.submit(self.pipeline.system_alert,
            f"alertd gave up on an alert for {notifier}",
            f"'{item.title}' (rule {item.rule}) could not be delivered to {notifier} after "
            f"{item.attempts + 1} tries: {error}", "failure", others)

    def _job(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception as exc:
            if write_failure(exc):
                return  # said loudly once, when the core stalled (or the lead was lost)
            log.exception("housekeeping job failed; it runs again at its next time")

    # --- a state file that cannot be written ------------------------------------------------

    def took_over(self, node: str, previous: str) -> None:
        """The one notice of a failover, through every notifier, queued like any alert."""
        self.core.call(self.pipeline.system_alert, f"alertd on {node} took over from {previous}",
                       f"{previous} stopped leading (its database session ended); {node} "
                       "leads now, catches up on every account and sends what was pending.",
                       "info", tuple(self.workers))

    def _stalled(self, reason: str) -> None:
        """Called on the core thread: say it loudly through every notifier that still sends,
        directly, since the outbox is the very thing that cannot be written. A leader whose
        session is gone says nothing: it is no longer the leader, and stands down."""
        if self.ha is not None and self.ha.session_lost():
            self.ha.lost(reason)
            return
        sdnotify.notify(f"STATUS={reason}; not reading the exchanges")
        title = "alertd cannot write its state file"
        body = (f"{reason}.\nalertd has stopped reading the exchanges and holds what it had "
                "not written; it retries every few seconds and catches up over REST once the "
                "file takes writes again (fills of the last 24 h). Free disk space or fix the "
                "file's permissions.")
        threading.Thread(target=self._tell_directly, args=(title, body), name="stall-notice",
                         daemon=True).start()

    def _tell_directly(self, title: str, body: str) -> None:
        """Send to every notifier now, bypassing the outbox (for when it cannot be written)."""
        for notifier in [w.notifier for w in self.workers.values()]:
            try:
                notifier.send(title, body, "failure")
            except Exception as exc:
                log.error("%s: could not send the state-file failure notice either: %s",
                          notifier.name, safe_text(str(exc)))

    def _resumed(self, reason: str, seconds: float) -> None:
        sdnotify.notify(f"STATUS={self.rules.summary()}, {len(self.streams)} streams")
        self.pipeline.system_alert(
            "alertd writes its state file again",
            f"After {seconds:.0f} s ({reason}), alertd writes its state file again; the "
            "streams reconnect and catch up over REST.", "success", tuple(self.workers))

    def _check_state_file(self) -> None:
        """Deleted or replaced under us, the state would be lost at the next start (and fills
        announced again): stop, put it back from the open copy, and let systemd restart."""
        problem = self.store.file_problem()
        if problem is None or self._lost_file:
            return
        self._lost_file = problem
        log.error("%s; alertd stops, writes it back from its open copy and exits with %d for "
                  "systemd to restart it", problem, EXIT_STATE_FILE)
        self._tell_directly("alertd's state file was deleted",
                            f"{problem}. alertd stops, writes it back from its open copy, and "
                            "is restarted by systemd (Restart=on-failure).")
        self.exit_code = EXIT_STATE_FILE
        self.request_stop()

    def _queue_silences(self) -> None:
        """`end_silences` for the core, unless the last one still waits there: a stalled or
        flooded core must not find a second's worth of them queued per second."""
        if self._silences_queued.is_set():
            return
        self._silences_queued.set()

        def end_silences() -> None:
            self._silences_queued.clear()
            self.pipeline.end_silences()
        self.core.submit(end_silences)

    def _prune(self) -> None:
        keys = frozenset(r.key for r in self.rules.rules)
        removed = self.core.call(self.pipeline.prune, TERMINAL, keys)
        if removed:
            log.info("housekeeping: forgot %d old orders, fills and sent alerts", removed)
