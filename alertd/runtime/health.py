"""How the pipeline is doing, in bounded memory: frames dropped per stream and reason, bursts
of invalid frames (the exchange may have changed its format), and faults of our own, each
logged once per cause and then counted, so a flood is a few lines, not a log per frame.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable

from alertd.domain.observations import Source
from alertd.ingest.decode import Drop
from alertd.storage.store import Store

log = logging.getLogger("alertd")

MAX_KEYS = 1_000
"""Streams × reasons (DropLog) and streams (BurstWatch) kept in memory at most. Both are keyed
by stream, not by subject, so a real agent stays far below; the bound keeps a source key
that is somehow unbounded from growing them: past it, the least recently counted key whose
counts are in the state file already is forgotten (it starts a fresh minute when it comes
back), and a burst window forgotten starts again empty."""


class DropLog:
    """Counts dropped frames per stream and reason; logs the first, then a count per minute.
    Also counts what detection judged history (reason `history`: a fill or order change
    stamped older than the 30-day horizon), so nothing goes unannounced unsaid."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, every: float = 60.0) -> None:
        self.counts: Counter[tuple[str, str]] = Counter()
        self.examples: dict[tuple[str, str], str] = {}
        self._saved: Counter[tuple[str, str]] = Counter()
        self._unlogged: Counter[tuple[str, str]] = Counter()
        self._next_log: dict[tuple[str, str], float] = {}
        self._clock, self._every = clock, every
        self._lock = threading.Lock()

    def add(self, src: Source, drop: Drop, what: str = "frame") -> None:
        """Count one dropped `what` (a frame, or an update detection would not announce)."""
        key = (src.key, drop.reason)
        now = self._clock()
        with self._lock:
            self.counts[key] += 1
            self.examples.pop(key, None)  # re-inserted: the dict's order is recency
            self.examples[key] = drop.detail[:300]
            self._unlogged[key] += 1
            if len(self.examples) > MAX_KEYS:
                self._forget_saved()
            if now < self._next_log.get(key, 0.0):
                return
            n, self._unlogged[key] = self._unlogged[key], 0
            self._next_log[key] = now + self._every
        if n == 1:
            log.warning("%s: dropped a %s (%s): %s", src.key, what, drop.reason, drop.detail)
        else:
            log.warning("%s: dropped %d %ss (%s) in the last minute, e.g. %s", src.key, n,
                        what, drop.reason, drop.detail)

    def _forget_saved(self) -> None:
        """Forget the least recently counted keys already in the state file, down to
        MAX_KEYS (an unsaved count is never lost); call under the lock."""
        for key in list(self.examples):
            if len(self.examples) <= MAX_KEYS:
                return
            if self.counts[key] == self._saved.get(key, 0):
                for memory in (self.counts, self.examples, self._saved, self._unlogged,
                               self._next_log):
                    memory.pop(key, None)

    def unsaved(self) -> list[tuple[str, str, int, str]]:
        """(source, reason, new drops since the last call, an example) for the state file."""
        with self._lock:
            out = [(key[0], key[1], n - self._saved[key], self.examples.get(key, ""))
                   for key, n in self.counts.items() if n > self._saved[key]]
            self._saved = Counter(self.counts)
        return out


@dataclasses.dataclass(slots=True)
class _Seen:
    due: float
    """When the count may next be said."""
    since: float
    """When the traceback or the last count was said."""
    level: int
    msg: str
    args: tuple[object, ...]
    count: int = 0
    """Occurrences not yet said."""


class FaultLog:
    """A traceback once per cause (exception type and the line that raised it), then how many
    more came, at most once a minute: a bug that every frame reaches wrote a traceback per
    frame (20,000 frames, 23 MB). The count is said on the next occurrence or by `tick`,
    which the core's housekeeping calls, so it needs no thread of its own."""

    def __init__(self, clock: Callable[[], float], every: float = 60.0) -> None:
        self._clock, self._every = clock, every
        self._causes: dict[tuple[str, str, int], _Seen] = {}
        self._lock = threading.Lock()

    def log(self, level: int, exc: BaseException, msg: str, *args: object) -> None:
        """Log `msg % args` with the traceback if this cause is new, else count it."""
        cause, now = _cause(exc), self._clock()
        with self._lock:
            seen = self._causes.get(cause)
            if seen is None:
                self._causes[cause] = _Seen(now + self._every, now, level, msg, args)
            else:
                seen.count += 1
                seen.level, seen.msg, seen.args = level, msg, args
                if seen.due - now > self._every:  # the clock went back
                    seen.due = now + self._every
                if now < seen.due:
                    return
                due = self._take(cause, seen, now)
        if seen is None:
            log.log(level, msg, *args, exc_info=exc)
        else:
            self._say(*due)

    def tick(self) -> None:
        """Say the counts whose minute is over (a flood that stopped is still counted)."""
        now = self._clock()
        with self._lock:
            due = [self._take(cause, seen, now) for cause, seen in self._causes.items()
                   if seen.count and now >= seen.due]
        for item in due:
            self._say(*item)

    def _take(self, cause: tuple[str, str, int], seen: _Seen,
              now: float) -> tuple[tuple[str, str, int], int, int, str, float]:
        said = (cause, seen.count, seen.level, seen.msg % seen.args if seen.args else seen.msg,
                now - seen.since)
        seen.count, seen.due, seen.since = 0, now + self._every, now
        return said

    def _say(self, cause: tuple[str, str, int], n: int, level: int, text: str,
             span: float) -> None:
        period = "minute" if span < 1.5 * self._every else f"{span / 60:.0f} minutes"
        log.log(level, "%s: %d more like it in the last %s (%s at %s:%d; traceback logged "
                "once)", text, n, period, *cause)


def _cause(exc: BaseException) -> tuple[str, str, int]:
    """The exception's type and the file and line it was raised at (its innermost frame)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    where = (tb.tb_frame.f_code.co_filename, tb.tb_lineno) if tb is not None else ("?", 0)
    return type(exc).__qualname__, *where


INVALID = frozenset({"not_utf8", "not_json", "not_object", "schema_invalid", "oversized",
                     "too_deep", "amount_out_of_range"})
"""Drop reasons that say the exchange sent what its format does not allow."""
BURST, BURST_WINDOW, BURST_EVERY = 3, 600.0, 3600.0


class BurstWatch:
    """Notices an account's frames turning invalid (the exchange changed its format)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._recent: dict[str, deque[float]] = {}
        self._counts: Counter[str] = Counter()
        self._reported: dict[str, float] = {}

    def add(self, key: str) -> int:
        """How many invalid frames the window held, if that is a burst to report now; else 0.

        Constant time and memory per frame: only the last BURST times are kept (enough to
        tell a burst), and the window's count is reset when the window slides past."""
        now = self._clock()
        recent = self._recent.pop(key, None)
        if recent is None:
            recent = deque(maxlen=BURST)
        self._recent[key] = recent  # re-inserted: the dict's order is recency
        if len(self._recent) > MAX_KEYS:
            oldest = next(iter(self._recent))
            for memory in (self._recent, self._counts, self._reported):
                memory.pop(oldest, None)
        if recent and now - recent[-1] >= BURST_WINDOW:
            self._counts[key] = 0
        recent.append(now)
        self._counts[key] += 1
        if len(recent) < BURST or now - recent[0] >= BURST_WINDOW \
                or now - self._reported.get(key, -BURST_EVERY) < BURST_EVERY:
            return 0
        self._reported[key] = now
        count, self._counts[key] = self._counts[key], 0
        return count


def save_health(store: Store, streams: list[tuple[str, str, str, float | None, int]],
                drops: list[tuple[str, str, int, str]]) -> None:
    """Record each stream's state (source, exchange, state, last frame, connects) for
    `alertd status`, and add newly dropped frames to the lasting counts."""
    now = store.clock()
    with store.transaction():
        store.db.executemany("INSERT OR REPLACE INTO health VALUES (?, ?, ?, ?, ?, ?)",
                             [(*row, now) for row in streams])
        store.db.executemany(
            "INSERT INTO drops VALUES (?, ?, ?, ?) ON CONFLICT (source, reason) DO UPDATE "
            "SET count = drops.count + excluded.count, example = excluded.example", drops)
