"""Periodic housekeeping on a monotonic clock: every job runs at its interval whatever the
wall clock does. (The `schedule` package computes its next runs from `datetime.now()`, so a
clock stepped back an hour stopped every job for that hour, the deleted-state-file check
included.) Each job is a callable; one that raises is the job's own business (see `run`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class _Job:
    every: float
    fn: Callable[[], object]
    next_at: float


class Ticker:
    """`every(seconds, fn)` registers a job; `run_pending()` runs the ones due, each at most
    once per call, and schedules the next from now (a late run does not bunch up)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self.clock = clock
        self.jobs: list[_Job] = []

    def every(self, seconds: float, fn: Callable[[], object]) -> None:
        self.jobs.append(_Job(seconds, fn, self.clock() + seconds))

    def run_pending(self) -> None:
        for job in self.jobs:
            now = self.clock()
            if now >= job.next_at:
                job.next_at = now + job.every
                job.fn()
