"""Microseconds per frame in each stage of alertd, so a regression shows which stage it came
from: decode, schema, normalise, detect, rules, group/outbox, the transaction around them
(savepoint, group commit, fsync), and what running on a socket thread beside the core thread
adds (the hand-off).

The stages are alertd's own objects, driven in one process on frames built as
`benchmarks/throughput.py` builds them (1 KB DeltaDeFi `order_info` frames, the same 100
rules): a Pipeline over a real SQLite Store in a temporary folder, its validators, exchange,
detector, rules and queueing, timed one stage at a time, frame by frame, in the order and the
transactions `Pipeline.frame` runs them. Two more passes, each on a fresh store, check the sum:
`Pipeline.frame` itself, and the same frames fed through a `Core` by a thread that decodes them
as a socket thread does; that pass less the single-threaded one is the hand-off. Each mix runs
`--runs` times on fresh stores; the table shows the median run.

Run: python benchmarks/stages.py [--frames N] [--runs N] (defaults: 5,000 frames, 5 runs,
under a minute on 2 cores)
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from throughput import bench_rules, order_frames

from alertd.detect.detector import CORRECTION
from alertd.domain.observations import Source, epoch
from alertd.exchanges import EXCHANGES
from alertd.ingest.decode import decode
from alertd.rules.evaluate import evaluate
from alertd.rules.load import load_rules
from alertd.runtime.core import Core
from alertd.runtime.pipeline import Pipeline
from alertd.shaping.fill_log import correct_fill, log_fill
from alertd.storage.store import Store

NOW = epoch("2026-11-22T10:00:10Z") or 0.0
"""The pipeline's clock: just after the frames' stamps, so that their fills are news on any
day the benchmark runs (a fill stamped more than 30 days before "now" is history)."""
SRC = Source("bench", "deltadefi", "spot")
STAGES = ("decode", "schema", "normalise", "detect", "rules", "group/outbox", "transaction")
LABELS = {
    "decode": "decode (JSON, Decimal amounts)",
    "schema": "schema (jsonschema-rs)",
    "normalise": "normalise (exchange → observations)",
    "detect": "detect (orders, fills, levels; SQLite)",
    "rules": "rules (100: candidates, conditions)",
    "group/outbox": "group/outbox (+ fill log, silences)",
    "transaction": "transaction (savepoint, commit, fsync)",
}


def clock() -> float:
    return NOW


def mixes(n: int) -> dict[str, tuple[list[bytes], bool]]:
    """The frame mixes, each with whether a few rules match (10 % of the heavy mix's frames
    alert): new orders only (every frame a new order, nothing fills), and the heavy mix where
    every frame changes state (orders opening, filling partly, then completely)."""
    heavy = order_frames(n)
    new = order_frames(3 * n)[::3]
    return {"new orders": (new, False), "heavy": (heavy, False),
            "heavy, 10 % alert": (heavy, True)}


def staged(raws: list[bytes], pipeline: Pipeline) -> dict[str, float]:
    """Each stage's seconds over all frames, run frame by frame as `Pipeline.frame` runs them
    (the detect, rules and queueing of a frame in one deferred transaction), timed apart."""
    spent = dict.fromkeys(STAGES, 0.0)
    exchange, store, now = EXCHANGES[SRC.exchange], pipeline.store, clock()
    detector, rules, armed = pipeline.detector, pipeline.rules, pipeline.armed
    check, perf = pipeline.validators.check, time.perf_counter
    for raw in raws:
        t0 = perf()
        frame = decode(raw)
        t1 = perf()
        key = check(exchange, frame, SRC.market)
        t2 = perf()
        observations = exchange.normalise(key, frame, SRC.market, now)
        t3 = perf()
        with store.transaction(defer=True):
            t4 = perf()
            pipeline.watched.mark(SRC.key, now)
            events = [e for obs in observations for e in detector.observe(SRC, obs, None)]
            t5 = perf()
            raised = [(e, evaluate(e, rules, armed)) for e in events if e.kind != CORRECTION]
            t6 = perf()
            for event in events:
                if event.kind == "fill":
                    log_fill(store, epoch(event.fields["time"]) or now, event.fields)
                elif event.kind == CORRECTION:
                    correct_fill(store, epoch(event.fields["time"]) or now, event.fields)
            for event, alerts in raised:
                for alert in alerts:
                    pipeline._queue(alert, event, "resolved" if alert.fields is None
                                    else "alert")
            t7 = perf()
        t8 = perf()
        if pipeline.groups.due_in() == 0.0:
            pipeline.release()
        t9 = perf()
        spent["decode"] += t1 - t0
        spent["schema"] += t2 - t1
        spent["normalise"] += t3 - t2
        spent["detect"] += t5 - t4
        spent["rules"] += t6 - t5
        spent["group/outbox"] += t7 - t6 + t9 - t8
        spent["transaction"] += t4 - t3 + t8 - t7
    t0 = perf()
    pipeline.flush()
    spent["transaction"] += perf() - t0
    return spent


def direct(raws: list[bytes], pipeline: Pipeline) -> float:
    """Seconds for decode + `Pipeline.frame` of every frame in this thread, committing when
    due as the core does."""
    start = time.perf_counter()
    for raw in raws:
        pipeline.frame(SRC, decode(raw))
        if pipeline.due_in() == 0.0:
            pipeline.flush()
    pipeline.flush()
    return time.perf_counter() - start


def through_core(raws: list[bytes], pipeline: Pipeline) -> float:
    """Seconds from the first frame to the last one processed, when a socket-like thread
    decodes each and gives it to a running Core, as a socket thread does (since issue 19 the
    frame runs on that thread under the owner lock; before, over a queue to the core thread)."""
    core = Core(pipeline)
    core.start()

    def feed() -> None:
        for raw in raws:
            core.frame(SRC, decode(raw))

    start = time.perf_counter()
    feeder = threading.Thread(target=feed, name="socket")
    feeder.start()
    feeder.join()
    core.call(pipeline.flush, timeout=600)  # queued after the last frame: all are done
    took = time.perf_counter() - start
    core.stop()
    return took


def handoff_alone(n: int) -> float:
    """Seconds per item through the core's queue when the work is nothing: the queue and
    the wake-up alone, without SQLite releasing the GIL in between."""
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "q.db", clock=clock)
        pipeline = Pipeline(load_rules(bench_rules(Path(tmp) / "r", False), ["sink"],
                                       ["bench"]), store, clock=clock)
        core = Core(pipeline)
        core.start()
        start = time.perf_counter()
        for _ in range(n):
            core.submit(len, ())
        core.call(len, (), timeout=600)
        took = time.perf_counter() - start
        core.stop()
        store.close()
    return took / n


def one_run(raws: list[bytes], matching: bool) -> dict[str, float]:
    """µs per frame of each stage and of the two whole passes, each pass on a fresh store."""
    n = len(raws)
    with tempfile.TemporaryDirectory() as tmp:
        rules = load_rules(bench_rules(Path(tmp) / "rules", matching), ["sink"], ["bench"])

        def fresh(name: str) -> Pipeline:
            return Pipeline(rules, Store(Path(tmp) / f"{name}.db", clock=clock), clock=clock)

        out: dict[str, float] = {}
        passes: list[tuple[str, Callable[[list[bytes], Pipeline], Any]]] = [
            ("staged", staged), ("direct", direct), ("core", through_core)]
        for name, run in passes:
            pipeline = fresh(name)
            result = run(raws, pipeline)
            if name == "staged":
                out.update({k: v / n * 1e6 for k, v in result.items()})
            else:
                out[name] = result / n * 1e6
            if name == "direct":
                out["alerts"], out["messages"] = pipeline.alerts, pipeline.messages
            pipeline.store.close()
    out["sum"] = sum(out[k] for k in STAGES)
    out["handoff"] = out["core"] - out["direct"]
    return out


def median_run(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def table(results: dict[str, dict[str, float]], alone: float, n: int) -> str:
    names = list(results)
    width = 40
    head = f"{'µs per frame (median of runs)':<{width}}" + "".join(f"{m:>20}" for m in names)
    lines = [head, "-" * len(head)]

    def row(label: str, key: str) -> None:
        lines.append(f"{label:<{width}}" + "".join(f"{results[m][key]:>20.1f}" for m in names))

    for stage in STAGES:
        row(LABELS[stage], stage)
    lines.append("-" * len(head))
    row("sum of the stages", "sum")
    row("decode + Pipeline.frame, one thread", "direct")
    row("the same through Core (socket thread)", "core")
    row("hand-off (Core less one thread)", "handoff")
    lines.append(f"{'core-thread queue alone (no work per item)':<{width}}"
                 + "".join(f"{alone * 1e6:>20.1f}" for _ in names))
    lines.append("-" * len(head))
    counts = [f"{results[m]['alerts']:.0f} / {results[m]['messages']:.0f}" for m in names]
    lines.append(f"{'alerts raised / messages queued so far':<{width}}"
                 + "".join(f"{c:>20}" for c in counts))
    lines.append(f"({n:,} frames a mix, 100 rules, 1 KB DeltaDeFi order_info frames; "
                 "frames/s of a column = 1e6 / its Core row)")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=5000, help="frames per mix and run")
    parser.add_argument("--runs", type=int, default=5, help="runs per mix (median shown)")
    parser.add_argument("--handoff", type=int, default=20000,
                        help="items for the empty hand-off")
    args = parser.parse_args()
    started = time.monotonic()
    results: dict[str, dict[str, float]] = {}
    for name, (raws, matching) in mixes(args.frames).items():
        decode(raws[0])  # warm: first-use imports and caches are not a stage's cost
        results[name] = median_run([one_run(raws, matching) for _ in range(args.runs)])
        print(f"{name}: done ({time.monotonic() - started:.0f} s)", file=sys.stderr)
    alone = handoff_alone(args.handoff)
    print(f"Python {sys.version.split()[0]}, {time.monotonic() - started:.0f} s")
    print(table(results, alone, args.frames))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
