"""Prometheus metrics: the only module that imports prometheus_client, and imported only when
`metrics:` is set, so an alertd without it neither loads the library nor needs it installed.

A custom collector reads, at scrape time, the counts the stages keep anyway (plain integers
and Counters), so the frame path gains nothing but those increments. Labels are stream keys
(`account/market`), rule and notifier names, reasons and outcomes: never a URL, a key or an
address.
"""

from __future__ import annotations

import logging
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING

from prometheus_client import ProcessCollector, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.registry import Collector, CollectorRegistry
from prometheus_client.utils import floatToGoString

from alertd import __version__
from alertd.common.tally import Histogram
from alertd.config.metrics import MetricsSpec
from alertd.delivery import outbox
from alertd.storage.engine import open_reader

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from alertd.runtime.agent import Agent
    from alertd.runtime.leader import Node

log = logging.getLogger("alertd")

STATES = ("starting", "connecting", "subscribing", "connected", "silent", "catch_up_queued",
          "catch_up_failed", "reconnecting", "disconnected", "rejected", "paused", "stopped")
"""What `Stream.state` says; each stream has one series per state, 1 for the current one."""
NOT_FRAMES = frozenset({"history", "internal_error"})
"""Drop reasons that are not frames turned away: an update judged too old, and a frame the
pipeline took (counted `ok`) and then failed on."""
OUTCOMES = ("sent", "folded", "retry", "dead")


class AgentCollector(Collector):
    """Everything one agent exposes, read from its stages when Prometheus asks."""

    def __init__(self, agent: Agent) -> None:
        self.agent = agent

    def collect(self) -> Iterator[Metric]:
        agent = self.agent
        pipeline, streams, workers = agent.pipeline, list(agent.streams), dict(agent.workers)
        info = GaugeMetricFamily("alertd_build_info", "alertd's version", labels=["version"])
        info.add_metric([__version__], 1)
        yield info

        ok, drops = dict(pipeline.stream_frames), dict(pipeline.drops.counts)
        dropped: Counter[str] = Counter()
        for (stream, reason), n in drops.items():
            if reason not in NOT_FRAMES:
                dropped[stream] += n
        frames = CounterMetricFamily(
            "alertd_frames", "Frames per stream: ok (taken by the pipeline) or dropped (turned "
            "away before it; see alertd_drops_total)", labels=["stream", "result"])
        for key in sorted({s.source.key for s in streams} | set(ok) | set(dropped)):
            frames.add_metric([key, "ok"], ok.get(key, 0))
            frames.add_metric([key, "dropped"], dropped.get(key, 0))
        yield frames
        yield _counter("alertd_drops", "Frames and updates dropped, per stream and reason",
                       ["stream", "reason"], [([s, r], n) for (s, r), n in sorted(drops.items())])
        yield _counter("alertd_alerts", "Alerts queued per rule (rule alertd: its own notices)",
                       ["rule"], [([r], n) for r, n in sorted(dict(pipeline.rule_alerts).items())])

        deliveries = CounterMetricFamily(
            "alertd_deliveries", "Outbox rows per notifier by what a try did: sent (as a "
            "message), folded (into a digest sent), retry, dead (given up)",
            labels=["notifier", "outcome"])
        latency = HistogramMetricFamily(
            "alertd_queued_to_delivered_seconds", "From an alert queued to its notifier taking "
            "it, retries and quiet hours included", labels=["notifier"])
        for name, worker in sorted(workers.items()):
            outcomes = dict(worker.outcomes)
            for outcome in OUTCOMES:
                deliveries.add_metric([name, outcome], outcomes.get(outcome, 0))
            latency.add_metric([name], *_buckets(worker.latency))
        yield deliveries
        yield latency
        yield from self._outbox(workers)

        state = GaugeMetricFamily("alertd_stream_state", "1 for each stream's current state",
                                  labels=["stream", "state"])
        for stream in streams:
            now = stream.state
            for name in (*STATES, *(() if now in STATES else (now,))):
                state.add_metric([stream.source.key, name], 1 if name == now else 0)
        yield state
        for metric, help_text, attr in (
                ("alertd_stream_connects", "Connections opened per stream", "connects"),
                ("alertd_catch_ups", "REST catch-ups and reconciliations begun per stream",
                 "catch_ups"),
                ("alertd_catch_up_failures", "REST catch-ups that failed per stream",
                 "catch_up_failures")):
            yield _counter(metric, help_text, ["stream"],
                           [([s.source.key], getattr(s, attr)) for s in streams])

        yield GaugeMetricFamily("alertd_core_queue_depth", "Items (frames, mostly) waiting for "
                                "the core thread; 200 is full, and the sockets wait",
                                value=agent.core.depth())
        frame_latency = agent.core.latency
        if frame_latency is not None:
            buckets, total = _buckets(frame_latency.histogram)
            yield HistogramMetricFamily(
                "alertd_frame_to_queued_seconds", "From a frame read off its socket to its "
                "alerts committed to the state file", buckets=buckets, sum_value=total)

    def _outbox(self, workers: Iterable[str]) -> Iterator[Metric]:
        """Pending rows and the oldest one's age per notifier, read on a connection of its
        own, read-only (WAL lets it in beside the core's writes; the core is not asked)."""
        try:
            db = open_reader(self.agent.config.state_path)
            try:
                found = outbox.pending(db)
            finally:
                db.close()
        except sqlite3.Error as exc:
            log.warning("metrics: could not read the outbox for a scrape: %s", exc)
            return
        now = self.agent.store.clock()
        pending = GaugeMetricFamily("alertd_outbox_pending", "Alerts waiting to be sent, per "
                                    "notifier (one per URL)", labels=["notifier"])
        age = GaugeMetricFamily("alertd_outbox_oldest_pending_age_seconds", "Age of the oldest "
                                "alert still waiting, per notifier; 0 when none",
                                labels=["notifier"])
        for name in sorted(set(workers) | set(found)):
            n, oldest = found.get(name, (0, None))
            pending.add_metric([name], n)
            age.add_metric([name], 0.0 if oldest is None else max(0.0, now - oldest))
        yield pending
        yield age


def _counter(name: str, help_text: str, labels: list[str],
             values: Iterable[tuple[list[str], float]]) -> CounterMetricFamily:
    family = CounterMetricFamily(name, help_text, labels=labels)
    for label_values, value in values:
        family.add_metric(label_values, value)
    return family


def _buckets(histogram: Histogram) -> tuple[list[tuple[str, float]], float]:
    buckets, total = histogram.snapshot()
    return [(floatToGoString(bound), n) for bound, n in buckets], total


class NodeCollector(Collector):
    """On a PostgreSQL state: this alertd's role and how often it took over from another."""

    def __init__(self, node: Node) -> None:
        self.node = node

    def collect(self) -> Iterator[Metric]:
        role = GaugeMetricFamily("alertd_role", "1 for this alertd's role on a shared "
                                 "PostgreSQL state: leader or standby", labels=["role"])
        for name in ("leader", "standby"):
            role.add_metric([name], 1 if self.node.role == name else 0)
        yield role
        yield CounterMetricFamily("alertd_failovers", "Times this alertd took over from "
                                  "another leader", value=self.node.failovers)


class MetricsServer:
    """The HTTP endpoint on its own registry (not the library's global one), on a daemon
    thread, until `stop`. A standby has no agent: it serves its role alone."""

    def __init__(self, agent: Agent | None, spec: MetricsSpec, node: Node | None = None) -> None:
        self.spec = spec
        self.registry = CollectorRegistry()
        if agent is not None:
            self.registry.register(AgentCollector(agent))
            agent.core.time_frames()
            node = node or agent.ha
        if node is not None:
            self.registry.register(NodeCollector(node))
        ProcessCollector(registry=self.registry)
        self._server: WSGIServer | None = None

    def start(self) -> bool:
        """Listen; an address that cannot be had is logged, and alertd runs on without."""
        try:
            self._server, _ = start_http_server(self.spec.port, self.spec.host,
                                                registry=self.registry)
        except OSError as exc:
            log.error("metrics: cannot listen on %s (%s); alertd runs on without metrics; set "
                      "'metrics:' to a free port", self.spec, exc.strerror or exc)
            return False
        log.info("metrics: serving http://%s/metrics", self.spec)
        return True

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
