"""The daemon: sources → pipeline → outbox → delivery workers, and its lifecycle.

It owns the threads and the state file; everything it runs is built from the same parts the
tests and the demo use, with the transport and the notifiers passed in.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping

import schedule

from alertd.config import Config
from alertd.delivery import DeliveryWorker
from alertd.notify import Notifier
from alertd.outbox import Outbox
from alertd.pipeline import Pipeline
from alertd.protocols import protocols_for
from alertd.rules import RuleSet
from alertd.store import Store
from alertd.streams import Stream, StreamSettings
from alertd.wsclient import connect as ws_connect

log = logging.getLogger("alertd")


class Agent:
    """A running alertd: call `start()`, later `stop()`; `run()` does both around a wait."""

    def __init__(self, config: Config, rules: RuleSet, notifiers: Mapping[str, Notifier], *,
                 settings: StreamSettings | None = None,
                 connect: Callable[..., object] = ws_connect,
                 clock: Callable[[], float] = time.time) -> None:
        self.config, self.rules = config, rules
        self.settings = settings or StreamSettings(down_after=config.stream_down_after)
        self.store = Store(config.state_path, clock=clock)
        self.workers = {name: DeliveryWorker(n, Outbox(self.store), clock=clock,
                                             max_age=config.delivery_max_age)
                        for name, n in notifiers.items()}
        self.pipeline = Pipeline(rules, self.store, on_queued=self._wake, clock=clock)
        self.streams = [Stream(p, self.pipeline, self.settings, connect=connect)  # type: ignore[arg-type]
                        for account in config.accounts for p in protocols_for(account)]
        self._stop = threading.Event()
        self._scheduler = schedule.Scheduler()
        self._scheduler.every(6).hours.do(self._job, self._prune)

    def _wake(self, notifiers: Iterable[str]) -> None:
        for name in notifiers:
            worker = self.workers.get(name)
            if worker is not None:
                worker.wake()

    def start(self) -> None:
        self._prune()
        for worker in self.workers.values():
            worker.start()
        for stream in self.streams:
            stream.start()
        log.info("alertd started: %s, %d streams, notifiers: %s", self.rules.summary(),
                 len(self.streams), ", ".join(self.workers) or "none")

    def run(self) -> int:
        """Run until `request_stop()` (the CLI wires SIGTERM and SIGINT to it)."""
        self.start()
        try:
            while not self._stop.wait(1.0):
                self._scheduler.run_pending()
        finally:
            self.stop()
        return 0

    def request_stop(self) -> None:
        self._stop.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop reading, let sends in flight finish within `timeout`, close the state file."""
        self._stop.set()
        for stream in self.streams:
            stream.stop()
        deadline = time.monotonic() + timeout
        for stream in self.streams:
            stream.join(max(0.1, deadline - time.monotonic()))
        for name, worker in self.workers.items():
            if not worker.stop(max(0.1, deadline - time.monotonic())):
                log.warning("%s: a send was still in flight at shutdown; it stays pending", name)
        self.store.close()
        log.info("alertd stopped: %d frames, %d alerts", self.pipeline.frames, self.pipeline.alerts)

    def _job(self, fn: Callable[[], object]) -> None:
        try:
            fn()
        except Exception:
            log.exception("housekeeping job failed; it runs again at its next time")

    def _prune(self) -> None:
        removed = self.store.prune()
        if removed:
            log.info("housekeeping: forgot %d old orders, fills and sent alerts", removed)
