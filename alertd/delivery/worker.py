"""Delivery workers: one thread per notifier, so a slow channel never delays another.

Each worker takes due rows from the outbox, sends them, and marks them delivered; a failure is
retried with exponential backoff and jitter until the alert is older than `max_age`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from alertd.delivery.notify import DeliveryError, Notifier, TargetGone
from alertd.delivery.outbox import Delivery, Outbox

log = logging.getLogger("alertd.delivery")

RETRY_FIRST, RETRY_MAX = 1.0, 300.0
IDLE = 5.0


def retry_delay(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds before the next try: 1 s doubling to 5 min, each within ±50 % jitter."""
    base = min(RETRY_MAX, RETRY_FIRST * 2 ** max(0, attempts))
    return base * (0.5 + rng())


class DeliveryWorker:
    """Sends one notifier's pending alerts in order, never giving up before `max_age`."""

    def __init__(self, notifier: Notifier, outbox: Outbox, *, max_age: float = 86400.0,
                 clock: Callable[[], float] = time.time,
                 on_dead: Callable[[str, Delivery, str], None] | None = None) -> None:
        self.notifier, self.outbox = notifier, outbox
        self.max_age, self.clock, self.on_dead = max_age, clock, on_dead
        self.heartbeat = time.monotonic()
        self.sent = 0
        self.failures = 0
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"deliver-{notifier.name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def stop(self, timeout: float) -> bool:
        """Finish the send in flight (if any) and stop; False if it did not end in time."""
        self._stopping.set()
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        self.outbox.close()
        return True

    def _run(self) -> None:
        name = self.notifier.name
        while not self._stopping.is_set():
            self._wake.clear()
            self.heartbeat = time.monotonic()
            try:
                batch = self.outbox.due(name)
                for item in batch:
                    if self._stopping.is_set():
                        return
                    self._deliver(item)
                if batch:
                    continue
                next_at = self.outbox.next_due(name)
            except Exception:
                log.exception("%s: delivery loop error; retrying in 5 s", name)
                next_at = self.clock() + 5
            wait = IDLE if next_at is None else min(IDLE, max(0.0, next_at - self.clock()))
            self._wake.wait(wait)

    def _deliver(self, item: Delivery) -> None:
        name = self.notifier.name
        self.heartbeat = time.monotonic()
        try:
            if item.target:
                self.notifier.send(item.title, item.body, item.severity,  # type: ignore[call-arg]
                                   target=item.target)
            else:
                self.notifier.send(item.title, item.body, item.severity)
        except TargetGone as exc:
            self._mark(self.outbox.dead, item.id, str(exc))
            log.warning("%s: alert %d was for a URL since removed from the notifier; dropped",
                        name, item.id)
            return
        except DeliveryError as exc:
            self.failures += 1
            age = self.clock() - item.created
            if age >= self.max_age:
                self._mark(self.outbox.dead, item.id, str(exc))
                log.error("%s: gave up on alert %d (%s) after %d tries over %.0f s: %s", name,
                          item.id, item.rule, item.attempts + 1, age, exc)
                if self.on_dead is not None:
                    self.on_dead(name, item, str(exc))
                return
            delay = retry_delay(item.attempts)
            self._mark(self.outbox.retry_later, item.id, str(exc), self.clock() + delay)
            log.warning("%s: could not deliver alert %d (%s), retrying in %.1f s: %s", name,
                        item.id, item.rule, delay, exc)
            return
        self._mark(self.outbox.delivered, item.id)
        self.sent += 1

    def _mark(self, write: Callable[..., None], *args: object) -> None:
        """Record what became of a send before reading the outbox again, however long the
        state file refuses writes: reading first would send the same alert twice."""
        said = False
        while True:
            try:
                write(*args)
                return
            except Exception as exc:
                if self._stopping.is_set():
                    log.warning("%s: stopping before alert %s was marked; it is sent again "
                                "after the next start", self.notifier.name, args[0])
                    return
                if not said:
                    said = True
                    log.warning("%s: cannot record alert %s yet (%s); trying again every "
                                "second", self.notifier.name, args[0], exc)
                self.heartbeat = time.monotonic()
                self._stopping.wait(1.0)
