"""`alertd replay`: a recording through the rules, on the daemon's core, with the recorded
times on a fake clock (so groups, reminders and reports come out as they would have), as fast
as it goes or at the recorded pace.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any, TextIO

from alertd.authoring.ruletest import Clock, Sent, sent, settle, tick
from alertd.domain.observations import Source
from alertd.rules.model import RuleSet
from alertd.runtime.pipeline import Pipeline
from alertd.storage.store import Store

PROGRESS_EVERY = 1000


def entries(path: Path, problems: list[str]) -> Iterator[dict[str, Any]]:
    """The recording's lines; one that is not a recorded input is noted and skipped."""
    with path.open(encoding="utf-8") as lines:
        for n, line in enumerate(lines, 1):
            try:
                entry = json.loads(line, parse_float=Decimal)
                entry["source"] = Source(**entry["source"])
                float(entry["t"])
            except (ValueError, KeyError, TypeError):
                problems.append(f"{path}:{n}: not a line of an alertd recording; skipped")
                continue
            yield entry


def replay(path: Path, rules: RuleSet, *, state: Path | None = None, realtime: bool = False,
           progress: TextIO | None = None) -> tuple[list[Sent], dict[str, int], list[str]]:
    """What the rules would have sent for a recording: (alerts, counts, problems). A given
    state file is copied first, never changed."""
    problems: list[str] = []
    total = sum(1 for _ in path.open(encoding="utf-8")) if progress is not None else 0
    with tempfile.TemporaryDirectory(prefix="alertd-replay-") as tmp:
        db = ":memory:"
        if state is not None:
            db = str(Path(tmp) / "state.db")
            shutil.copyfile(state, db)
        clock = Clock(0.0)
        pipeline = Pipeline(rules, Store(db, clock=clock), clock=clock)
        started, first = time.monotonic(), None
        n = 0
        for n, entry in enumerate(entries(path, problems), 1):
            t = float(entry["t"])
            first = t if first is None else first
            if realtime:
                time.sleep(max(0.0, (t - first) - (time.monotonic() - started)))
            clock.now = t
            _feed(pipeline, entry)
            if progress is not None and total > PROGRESS_EVERY and n % PROGRESS_EVERY == 0:
                progress.write(f"\rreplay: {n:,} of {total:,} lines ({n * 100 // total}%)")
                progress.flush()
        if progress is not None and total > PROGRESS_EVERY:
            progress.write(f"\rreplay: {n:,} of {total:,} lines (100%)\n")
        settle(pipeline, clock)
        out = sent(pipeline.store)
        counts = {"lines": n, "frames": pipeline.frames, "alerts": pipeline.alerts,
                  "messages": pipeline.messages}
        pipeline.store.close()
    return out, counts, problems


def _feed(pipeline: Pipeline, entry: dict[str, Any]) -> None:
    tick(pipeline)
    src = entry["source"]
    if "frame" in entry:
        pipeline.frame(src, entry["frame"])
    elif "catch_up" in entry:
        pipeline.catch_up(src, entry["catch_up"], float(entry["since"]),
                          entry.get("complete") is not False)
    elif "status" in entry:
        pipeline.stream_status(src, str(entry["status"]), str(entry.get("reason", "")))
    tick(pipeline)
