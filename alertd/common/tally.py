"""Latencies counted into fixed buckets, in plain Python: the stages keep them whether or not
metrics are on (an observation is a bisect and two additions), and the Prometheus adapter
reads them at scrape time, so no stage imports an outside library."""

from __future__ import annotations

import math
import threading
from bisect import bisect_left
from collections.abc import Sequence


class Histogram:
    """Counts per upper bound (`le`, seconds) and their sum; safe from several threads."""

    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(sorted(bounds))
        self._counts = [0] * (len(self.bounds) + 1)
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, value: float) -> None:
        """Count one observation; a negative one (a clock stepped back) counts as 0."""
        value = max(0.0, value)
        index = bisect_left(self.bounds, value)
        with self._lock:
            self._counts[index] += 1
            self._sum += value

    def snapshot(self) -> tuple[list[tuple[float, int]], float]:
        """Cumulative (upper bound, count) pairs ending at +inf, and the sum, taken together
        so that the +inf count is the number of observations the sum adds up."""
        with self._lock:
            counts, total = list(self._counts), self._sum
        out, running = [], 0
        for bound, n in zip((*self.bounds, math.inf), counts, strict=True):
            running += n
            out.append((bound, running))
        return out, total

    @property
    def count(self) -> int:
        with self._lock:
            return sum(self._counts)
