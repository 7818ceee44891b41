"""The owner of the state: frames in from every socket, alerts durable within 5 ms.

Everything that reads or writes the state (detect, rules, outbox, health, housekeeping,
reloads) runs one item at a time under one owner lock, on one connection: a socket thread runs
its own frames, the core thread everything else and the commit and group timers, so an alert
is on disk within ALERT_COMMIT whatever the sockets are doing, and a socket that errors out
cannot leave alerts waiting.
"""

from __future__ import annotations

import contextlib
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
WAKE_SLACK = 0.001
"""How much sooner than the core thread would look an item's commit must be due to wake it."""
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
    """Owns the state: one item at a time, under one owner lock, on one connection.

    A socket thread runs its own frames under the lock (`frame`, `drop`, `catch_up`,
    `stream_status`), in its socket's order, with no hand-off: handing each frame to another
    thread cost more than the frame (both threads fight for the GIL on every SQLite call).
    Everything else (`submit`, `call`: the agent, the workers' marks, housekeeping) and the
    commit and group timers run on the core thread, under the same lock. While the state
    cannot be written, socket items queue for the core thread, which replays them in order.
    """

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
        self._owner = pipeline.store.lock
        """The store's own lock: every transaction takes it anyway, so one lock, not two."""
        self._waiting = 0
        """Threads blocked on the owner lock; a socket thread that sees one lets it in."""
        self._count = threading.Lock()
        self._wakes_at = 0.0
        """When the core thread's wait ends (monotonic), so an item that opens a
        transaction due sooner wakes it."""
        self._thread = threading.Thread(target=self._run, name="core", daemon=True)
        self._stopped = threading.Event()
        self.latency: FrameLatency | None = None
        """Set by `time_frames` (metrics on); only then are frames stamped as they come."""

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def depth(self) -> int:
        """Items waiting for the state: queued for the core thread (QUEUE_FRAMES when full)
        and socket threads waiting for the owner lock."""
        return self._queue.qsize() + self._waiting

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

    def frame(self, src: Source, frame: dict[str, Any], more: bool = False) -> None:
        """A socket's frame, run on its thread; `more`: its socket holds the next frame
        already, so alerts may wait for it to share their commit (ALERT_COMMIT at most)."""
        if self.latency is None:
            self._inline(self.pipeline.frame, (src, frame), more)
        else:
            self._inline(self._timed_frame, (src, frame, time.monotonic()), more)

    def _timed_frame(self, src: Source, frame: dict[str, Any], received: float) -> list[Alert]:
        alerts = self.pipeline.frame(src, frame)
        if alerts and self.latency is not None:
            self.latency.queued(received, len(alerts))
        return alerts

    def drop(self, src: Source, drop: Drop) -> None:
        self._inline(self.pipeline.drop, (src, drop))

    def catch_up(self, src: Source, frames: list[Any], started: float,
                 complete: bool = True) -> None:
        """A REST catch-up's frames (`complete`: every part of it answered), in order with
        its socket's frames."""
        self._inline(self.pipeline.catch_up, (src, frames, started, complete))

    def stream_status(self, src: Source, status: str, reason: str) -> None:
        self._inline(self.pipeline.stream_status, (src, status, reason))

    def stop(self, timeout: float = 10.0) -> None:
        """Process what is queued, commit, and end the thread."""
        self._stopped.set()
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    # --- running items ------------------------------------------------------------------------

    def _inline(self, fn: Callable[..., Any], args: tuple[Any, ...], more: bool = False) -> None:
        if self._stopped.is_set():
            return
        if self.stalled is not None:
            self._queue.put((fn, args, None))  # replayed in order once the state takes writes
            return
        self._acquire()
        try:
            if self.stalled is not None:
                self._queue.put((fn, args, None))
                return
            self._execute(fn, args, None)
            if self.stalled is None:
                self._after(more)
        finally:
            self._owner.release()
        if self._waiting:
            time.sleep(0)  # let the thread the lock was released to take it

    def _acquire(self) -> None:
        if self._owner.acquire(blocking=False):
            return
        with self._count:
            self._waiting += 1
        try:
            self._owner.acquire()
        finally:
            with self._count:
                self._waiting -= 1

    def _execute(self, fn: Callable[..., Any], args: tuple[Any, ...],
                 future: Future[Any] | None) -> None:
        """Run one item, the owner lock held; a bug costs that item, a write failure stalls."""
        if future is None:
            self._held.append((fn, args))
        try:
            result = fn(*args)
        except BaseException as exc:
            if future is not None:
                future.set_exception(exc)
            if write_failure(exc):
                self._begin_stall(str(exc))
                return
            if future is None:
                self._held.pop()
                self.pipeline.faults.log(
                    logging.ERROR, exc, "core: %s failed; that item was dropped, the rest "
                    "go on", getattr(fn, "__name__", fn))
        else:
            if future is not None:
                future.set_result(result)

    def _after(self, more: bool = False) -> None:
        """Commit what is due (or, with alerts in it and nothing else waiting, at once), and
        wake the core thread if the open transaction is due before it would look."""
        self.heartbeat = now = time.monotonic()
        store = self.pipeline.store
        due = self.pipeline.due_in()
        if due == 0.0 or (not more and store.alerts_pending() and not self._queue.qsize()
                          and not self._waiting):
            self._flush()
        elif store.flush_due_in() is None:
            self._held.clear()
        elif due is not None and now + due + WAKE_SLACK < self._wakes_at and \
                threading.current_thread() is not self._thread:
            self._wakes_at = now
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait((_nothing, (), None))

    # --- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            self.heartbeat = time.monotonic()
            self._acquire()
            try:
                due = self.pipeline.due_in()
            finally:
                self._owner.release()
            wait = IDLE_TICK if due is None else max(due, 0.0005)
            self._wakes_at = time.monotonic() + wait
            try:
                item = self._queue.get(timeout=wait)
            except queue.Empty:
                self._acquire()
                try:
                    self._flush()
                finally:
                    self._owner.release()
                self._run_stall()
                continue
            if item is None:
                break
            if item[0] is _nothing:
                self._run_stall()
                continue
            self._acquire()
            try:
                self._execute(*item)
                if self.stalled is None:
                    self._after()
            finally:
                self._owner.release()
            self._run_stall()
        with self._owner:
            self._flush()

    def _flush(self) -> None:
        try:
            self.pipeline.flush()
        except Exception as exc:
            if write_failure(exc):
                self._begin_stall(str(exc))
                return
            self.pipeline.faults.log(logging.ERROR, exc, "core: committing the state failed; "
                                     "retrying at the next tick")
        else:
            self._held.clear()

    def _begin_stall(self, reason: str) -> None:
        """The state cannot be written: socket threads stop at once; the core thread waits
        and replays (`_run_stall`), woken if it is asleep."""
        if self.stalled is not None:
            return
        self.stalled = f"the state file cannot be written: {reason}"
        if threading.current_thread() is not self._thread:
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait((_nothing, (), None))

    def _run_stall(self) -> None:
        """Hold what was not committed, take nothing new, and try again every `retry_write`
        until the state takes writes; then replay the held work (on the core thread)."""
        if self.stalled is None:
            return
        reason, since = self.stalled, time.monotonic()
        with self._owner:
            held = len(self._held)
        log.error("core: %s; %d frames held, streams paused until it can", reason, held)
        if self.on_stall is not None:
            self.on_stall(reason)
        while not self._stopped.wait(self.retry_write):
            self.heartbeat = time.monotonic()
            with self._owner:
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
        with self._owner:
            if self._held:
                log.error("core: stopping with %d frames not written; the next start catches "
                          "up over REST", len(self._held))
            self._held.clear()


def _nothing() -> None:
    """Queued only to wake the core thread."""
