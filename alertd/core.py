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

from alertd.decode import Drop
from alertd.normalise import Source
from alertd.pipeline import Pipeline

log = logging.getLogger("alertd")

QUEUE_FRAMES = 10_000
"""Frames waiting for the core at most; past it a socket thread waits (TCP pushes back)."""
IDLE_TICK = 1.0


class Core:
    """Runs a Pipeline on its own thread; other threads `submit` work or `call` and wait."""

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline
        self.heartbeat = time.monotonic()
        self._queue: queue.Queue[tuple[Callable[..., Any], tuple[Any, ...],
                                       Future[Any] | None] | None] = queue.Queue(QUEUE_FRAMES)
        self._thread = threading.Thread(target=self._run, name="core", daemon=True)
        self._stopped = threading.Event()

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

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
        future: Future[Any] = Future()
        self._queue.put((fn, args, future))
        return future.result(timeout)

    def frame(self, src: Source, frame: dict[str, Any]) -> None:
        self.submit(self.pipeline.frame, src, frame)

    def drop(self, src: Source, drop: Drop) -> None:
        self.submit(self.pipeline.drop, src, drop)

    def stream_status(self, src: Source, status: str, reason: str) -> None:
        self.submit(self.pipeline.stream_status, src, status, reason)

    def stop(self, timeout: float = 10.0) -> None:
        """Process what is queued, commit, and end the thread."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)
        self._stopped.set()

    # --- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        store = self.pipeline.store
        while True:
            self.heartbeat = time.monotonic()
            due = store.flush_due_in()
            try:
                item = self._queue.get(timeout=IDLE_TICK if due is None else max(due, 0.0005))
            except queue.Empty:
                self._flush()
                continue
            if item is None:
                break
            fn, args, future = item
            try:
                result = fn(*args)
            except BaseException as exc:
                if future is not None:
                    future.set_exception(exc)
                else:
                    log.exception("core: %s failed; that item was dropped, the rest go on",
                                  getattr(fn, "__name__", fn))
            else:
                if future is not None:
                    future.set_result(result)
            if store.flush_due_in() == 0.0:
                self._flush()
        self._flush()

    def _flush(self) -> None:
        try:
            self.pipeline.flush()
        except Exception:
            log.exception("core: committing the state failed; retrying at the next tick")
