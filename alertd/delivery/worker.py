"""Delivery workers: one thread per notifier, so a slow channel never delays another.

Each worker takes due rows from the outbox, sends them within each URL's rate (what the rate
holds back, and what quiet hours held, goes out folded into a digest), and marks them
delivered; a failure is retried with exponential backoff and jitter until the alert is older
than `max_age`.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

from alertd.common.tally import Histogram
from alertd.delivery.notify import DeliveryError, Notifier, OutcomeUnknown, TargetGone
from alertd.delivery.outbox import Delivery, Outbox
from alertd.delivery.ratelimit import Rate, Window, digest, plan

log = logging.getLogger("alertd.delivery")

RETRY_FIRST, RETRY_MAX = 1.0, 300.0
UNSURE_WAIT = 600.0
"""After a try whose outcome is unknown, the one retry waits this long: a slow service has
answered or failed by then, and the trader reads at most one duplicate, not one a minute."""
IDLE = 5.0
DELIVERY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0,
                    3600.0, 6 * 3600.0, 86400.0)
"""Seconds from queued to delivered: a send takes well under a second, a retry minutes, a
quiet night hours."""


def retry_delay(attempts: int, rng: Callable[[], float] = random.random) -> float:
    """Seconds before the next try: 1 s doubling to 5 min, each within ±50 % jitter. The
    doubling stops at 2**30, past the cap: a float times 2**1024 overflows (days of tries)."""
    base = min(RETRY_MAX, RETRY_FIRST * 2 ** min(max(0, attempts), 30))
    return base * (0.5 + rng())


class DeliveryWorker:
    """Sends one notifier's pending alerts in order, never giving up before `max_age`.
    `rates` maps each URL target to its rate (`""`, a notifier without targets)."""

    def __init__(self, notifier: Notifier, outbox: Outbox, *, max_age: float = 86400.0,
                 clock: Callable[[], float] = time.time,
                 on_dead: Callable[[str, Delivery, str], None] | None = None,
                 rates: Mapping[str, Rate | None] | None = None,
                 fence: Callable[[], bool] | None = None) -> None:
        self.notifier, self.outbox = notifier, outbox
        self.fence = fence
        """Asked before each send (a leader on PostgreSQL: does its session still hold the
        lock?); False stops this worker before it sends anything more."""
        self.max_age, self.clock, self.on_dead = max_age, clock, on_dead
        self.rates = dict(rates or {})
        self.heartbeat = time.monotonic()
        self.sent = 0
        self.failures = 0
        self.folded = 0
        self.outcomes: Counter[str] = Counter()
        """Outbox rows by what became of a try: sent (the message), folded (the others in
        its digest), retry, dead; with `latency` (queued → delivered), for the metrics."""
        self.latency = Histogram(DELIVERY_BUCKETS)
        self._windows: dict[str, Window] = {}
        self._after: DeliveryWorker | None = None
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"deliver-{notifier.name}",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def start_after(self, previous: DeliveryWorker) -> None:
        """Start once `previous` (this notifier's worker before a reload, still sending) has
        ended: its send must be marked before this one reads the outbox, or the alert that
        was in flight goes out twice."""
        self._after = previous

        def wait_then_start() -> None:
            previous.join()
            if not self._stopping.is_set():
                self._thread.start()
            self._after = None

        threading.Thread(target=wait_then_start, name=f"deliver-{self.notifier.name}-next",
                         daemon=True).start()

    def wake(self) -> None:
        self._wake.set()

    def alive(self) -> bool:
        return self._thread.is_alive() or (self._after is not None and self._after.alive())

    def join(self) -> None:
        """Wait for the loop to end, however long its send in flight takes."""
        if self._thread.ident is not None:
            self._thread.join()
        self.outbox.close()

    def stop(self, timeout: float) -> bool:
        """Finish the send in flight (if any) and stop; False if it did not end in time."""
        self._stopping.set()
        self._wake.set()
        if self._thread.ident is None:  # never started (waiting for the one before it)
            return True
        self._thread.join(timeout)
        if self._thread.is_alive():
            return False
        self.outbox.close()
        return True

    def _window(self, target: str) -> Window:
        """The target's rate window, resumed from the state file's record of what was sent
        (a restart must not grant a fresh burst)."""
        window = self._windows.get(target)
        if window is None:
            rate = self.rates.get(target)
            sent = () if rate is None else [
                when for t, when in self.outbox.sent_since(self.notifier.name,
                                                           self.clock() - rate.per)
                if t == target]
            window = self._windows[target] = Window(rate, sent)
        return window

    def _run(self) -> None:
        name = self.notifier.name
        while not self._stopping.is_set():
            self._wake.clear()
            self.heartbeat = time.monotonic()
            try:
                batch = self.outbox.due(name)
                blocked = self._send(batch)
                if blocked is None:
                    continue
                next_at = self.outbox.next_due(name) if not batch else blocked
            except Exception:
                log.exception("%s: delivery loop error; retrying in 5 s", name)
                next_at = self.clock() + 5
            wait = IDLE if next_at is None else min(IDLE, max(0.0, next_at - self.clock()))
            self._wake.wait(wait)

    def _send(self, batch: Sequence[Delivery]) -> float | None:
        """Send what the rate windows allow; None if something was sent (look again at once),
        else when the first window frees a slot."""
        by_target: dict[str, list[Delivery]] = {}
        for item in batch:
            by_target.setdefault(item.target, []).append(item)
        blocked = self.clock() + IDLE
        progressed = False
        for target, items in by_target.items():
            window = self._window(target)
            now = self.clock()
            room = window.room(now)
            if not room:
                blocked = min(blocked, window.free_at(now))
                continue
            for message in plan(items, room, [i.held for i in items],
                                [i.severity == "failure" for i in items]):
                if self._stopping.is_set():
                    return None
                if self.fence is not None and not self.fence():
                    self._stopping.set()  # no longer the leader: another one sends now
                    return None
                self._deliver(message, window)
                progressed = True
        return None if progressed else blocked

    def _deliver(self, items: list[Delivery], window: Window) -> None:
        name = self.notifier.name
        first = items[0]
        ids = [i.id for i in items]
        self.heartbeat = time.monotonic()
        if len(items) == 1:
            title, body, severity = first.title, first.body, first.severity
        else:
            title, body, severity = digest([(i.title, i.body, i.severity) for i in items],
                                           held=first.held, rate=window.rate)
        try:
            if first.target:
                self.notifier.send(title, body, severity,  # type: ignore[call-arg]
                                   target=first.target)
            else:
                self.notifier.send(title, body, severity)
        except TargetGone as exc:
            self._mark(self.outbox.dead, ids, str(exc))
            self.outcomes["dead"] += len(ids)
            log.warning("%s: %d alerts were for a URL since removed from the notifier; dropped",
                        name, len(ids))
            return
        except DeliveryError as exc:
            self.failures += 1
            age = self.clock() - min(i.created for i in items)
            unknown = isinstance(exc, OutcomeUnknown)
            if unknown and first.unsure:
                self._mark(self.outbox.dead, ids, str(exc))
                self.outcomes["dead"] += len(ids)
                log.error("%s: alert %d (%s) not sent again: twice the service took it without "
                          "answering, so it may have arrived (twice)", name, first.id,
                          first.rule)
                if self.on_dead is not None:
                    self.on_dead(name, first, "the service took it twice without answering; "
                                 "it may have arrived")
                return
            if age >= self.max_age:
                self._mark(self.outbox.dead, ids, str(exc))
                self.outcomes["dead"] += len(ids)
                log.error("%s: gave up on alert %d (%s)%s after %d tries over %.0f s: %s", name,
                          first.id, first.rule, f" and {len(ids) - 1} folded with it"
                          if len(ids) > 1 else "", first.attempts + 1, age, exc)
                if self.on_dead is not None:
                    self.on_dead(name, first, str(exc))
                return
            delay = max(UNSURE_WAIT, retry_delay(0)) if unknown else retry_delay(first.attempts)
            self._mark(self.outbox.retry_later, ids, str(exc), self.clock() + delay)
            self.outcomes["retry"] += len(ids)
            log.warning("%s: could not deliver alert %d (%s), retrying in %.1f s: %s", name,
                        first.id, first.rule, delay, exc)
            return
        window.note(now := self.clock())
        self._mark(self.outbox.delivered, ids)
        self.sent += 1
        self.outcomes["sent"] += 1
        self.outcomes["folded"] += len(items) - 1
        for item in items:
            self.latency.observe(now - item.created)
        if len(items) > 1:
            self.folded += len(items)
            log.info("%s: %d alerts sent as one digest (%s)", name, len(items),
                     "held in quiet hours" if first.held else f"rate {window.rate}")

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
                    log.warning("%s: stopping before alerts %s were marked; they are sent "
                                "again after the next start", self.notifier.name, args[0])
                    return
                if not said:
                    said = True
                    log.warning("%s: cannot record alerts %s yet (%s); trying again every "
                                "second", self.notifier.name, args[0], exc)
                self.heartbeat = time.monotonic()
                self._stopping.wait(1.0)
