"""The one thread that owns the state: frames in from every socket, alerts durable within 5 ms.

Socket threads read and decode, then hand frames over a bounded queue; everything that reads
or writes the state (detect, rules, outbox, health, housekeeping, reloads) runs here, one
item at a time, so no lock is held across stages and no other thread touches the state file.
The commit timer lives here too: an alert is on disk within ALERT_COMMIT whatever the sockets
are doing, and a socket that errors out cannot leave alerts waiting.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from alertd.common.tally import Histogram
from alertd.domain.alerts import Alert
from alertd.domain.observations import Source
from alertd.ingest.decode import Drop
from alertd.runtime.pipeline import Pipeline
from alertd.storage.store import StateWriteError, Store, write_failure

log = logging.getLogger("alertd")

QUEUE_FRAMES = 200
"""Frames waiting for the core at most; past it a socket thread waits (TCP pushes back)."""
IDLE_TICK = 1.0
RETRY_WRITE = 5.0
"""While the state file cannot be written, how often the core tries again."""
FRAME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class FrameLatency:
    """Seconds from a frame read off its socket to its alerts committed (a Participant of
    the store: an alert counts once it is on disk, which may be after its frame returns)."""

    def __init__(self, store: Store) -> None:
        self.histogram = Histogram(FRAME_BUCKETS)
        self._store = store
        self._uncommitted: list[float] = []
        store.participants.append(self)

    def queued(self, received: float, alerts: int) -> None:
        """A frame stamped `received` (monotonic) queued `alerts`; call on the core thread."""
        if self._store.flush_due_in() is None:  # its transaction is committed already
            for _ in range(alerts):
                self.histogram.observe(time.monotonic() - received)
        else:
            self._uncommitted += [received] * alerts

    def committed(self) -> None:
        now = time.monotonic()
        for received in self._uncommitted:
            self.histogram.observe(now - received)
        self._uncommitted.clear()

    def abandoned(self) -> None:
        self._uncommitted.clear()  # the core replays the frames, stamps and all

    def began(self) -> None:
        pass

    def released(self) -> None:
        pass

    def rolled_back(self) -> None:
        pass

    def before_commit(self) -> None:
        pass


class Core:
    """Runs a Pipeline on its own thread; other threads `submit` work or `call` and wait."""

    def __init__(self, pipeline: Pipeline, *, retry_write: float = RETRY_WRITE,
                 on_stall: Callable[[str], None] | None = None,
                 on_resume: Callable[[str, float], None] | None = None) -> None:
        self.pipeline = pipeline
        self.heartbeat = time.monotonic()
        self.stalled: str | None = None
        """Why the state file cannot be written, while it cannot; streams stop reading."""
        self.retry_write, self.on_stall, self.on_resume = retry_write, on_stall, on_resume
        self._held: list[tuple[Callable[..., Any], tuple[Any, ...]]] = []
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...],
                                       Future[Any] | None] | None] = queue.Queue(QUEUE_FRAMES)
        self._thread = threading.Thread(target=self._run, name="core", daemon=True)
        self._stopped = threading.Event()
        self.latency: FrameLatency | None = None
        """Set by `time_frames` (metrics on); only then are frames stamped as they come."""

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def depth(self) -> int:
        """Items waiting for the core thread: frames, mostly; QUEUE_FRAMES when full."""
        return self._queue.qsize()

    def time_frames(self) -> Histogram:
        """Stamp frames from now on, and return the histogram of their latency."""
        if self.latency is None:
            self.latency = FrameLatency(self.pipeline.store)
        return self.latency.histogram

    # --- what socket threads and the agent call ---------------------------------------------

    def submit(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run `fn(*args)` on the core thread, in order with everything else submitted."""
        if self._stopped.is_set():
            return
        self._queue.put((fn, args, None))

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 30.0) -> Any:
        """Run `fn(*args)` on the core thread and return its result (or raise its error)."""
        if not self._thread.is_alive() or threading.current_thread() is self._thread:
            return fn(*args)
        if self.stalled is not None:
            raise StateWriteError(self.stalled)
        future: Future[Any] = Future()
        self._queue.put((fn, args, future))
        return future.result(timeout)

    def frame(self, src: Source, frame: dict[str, Any]) -> None:
        if self.latency is None:
            self.submit(self.pipeline.frame, src, frame)
        else:
            self.submit(self._timed_frame, src, frame, time.monotonic())

    def _timed_frame(self, src: Source, frame: dict[str, Any], received: float) -> list[Alert]:
        alerts = self.pipeline.frame(src, frame)
        if alerts and self.latency is not None:
            self.latency.queued(received, len(alerts))
        return alerts

    def drop(self, src: Source, drop: Drop) -> None:
        self.submit(self.pipeline.drop, src, drop)

    def catch_up(self, src: Source, frames: list[Any], started: float) -> None:
        """A REST catch-up's frames, taken in the core's order like any frame."""
        self.submit(self.pipeline.catch_up, src, frames, started)

    def stream_status(self, src: Source, status: str, reason: str) -> None:
        self.submit(self.pipeline.stream_status, src, status, reason)

    def stop(self, timeout: float = 10.0) -> None:
        """Process what is queued, commit, and end the thread."""
        self._stopped.set()
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    # --- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        store = self.pipeline.store
        while True:
            self.heartbeat = time.monotonic()
            due = self.pipeline.due_in()
            try:
                item = self._queue.get(timeout=IDLE_TICK if due is None else max(due, 0.0005))
            except queue.Empty:
                self._flush()
                continue
            if item is None:
                break
            fn, args, future = item
            if future is None:
                self._held.append((fn, args))
            try:
                result = fn(*args)
            except BaseException as exc:
                if write_failure(exc):
                    if future is not None:
                        future.set_exception(exc)
                    self._stall(str(exc))
                    continue
                if future is not None:
                    future.set_exception(exc)
                else:
                    self._held.pop()
                    self.pipeline.faults.log(
                        logging.ERROR, exc, "core: %s failed; that item was dropped, the rest "
                        "go on", getattr(fn, "__name__", fn))
            else:
                if future is not None:
                    future.set_result(result)
            if self.pipeline.due_in() == 0.0:
                self._flush()
            elif store.flush_due_in() is None:
                self._held.clear()
        self._flush()

    def _flush(self) -> None:
        try:
            self.pipeline.flush()
        except Exception as exc:
            if write_failure(exc):
                self._stall(str(exc))
                return
            self.pipeline.faults.log(logging.ERROR, exc, "core: committing the state failed; "
                                     "retrying at the next tick")
        else:
            self._held.clear()

    def _stall(self, reason: str) -> None:
        """The state file cannot be written: hold what was not committed, take nothing new,
        and try again every `retry_write` until it can; then replay the held work."""
        self.stalled = reason = f"the state file cannot be written: {reason}"
        since = time.monotonic()
        log.error("core: %s; %d frames held, streams paused until it can", reason,
                  len(self._held))
        if self.on_stall is not None:
            self.on_stall(reason)
        while not self._stopped.wait(self.retry_write):
            self.heartbeat = time.monotonic()
            try:
                for fn, args in self._held:
                    fn(*args)
                self.pipeline.store.probe()
            except Exception as exc:
                if not write_failure(exc):
                    log.exception("core: replaying held work failed")
                self.pipeline.store.abandon()
                continue
            self._held.clear()
            self.stalled = None
            log.warning("core: the state file takes writes again after %.0f s; streams "
                        "resume and catch up", time.monotonic() - since)
            if self.on_resume is not None:
                self.on_resume(reason, time.monotonic() - since)
            return
        if self._held:
            log.error("core: stopping with %d frames not written; the next start catches up "
                      "over REST", len(self._held))
        self._held.clear()
