"""Frame in, alerts queued: schema → normalise → detect → rules → outbox, one transaction.

No network here: the daemon, `alertd demo`, and the tests all feed frames the same way, and
the delivery side is only told (through `on_queued`) which notifiers have new work.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from alertd.delivery.outbox import Outbox
from alertd.detect.detector import CORRECTION, Detector
from alertd.detect.watched import Watched
from alertd.domain.alerts import Alert
from alertd.domain.events import Event
from alertd.domain.observations import Observation, Source, StreamObs, epoch, iso
from alertd.exchanges import EXCHANGES
from alertd.ingest.decode import Drop, Validators, decode
from alertd.rules.armed import Armed
from alertd.rules.evaluate import evaluate, render
from alertd.rules.model import RuleSet
from alertd.runtime.health import BURST_WINDOW, INVALID, BurstWatch, DropLog, FaultLog
from alertd.shaping import fill_log, reports
from alertd.shaping.fill_log import correct_fill, log_fill
from alertd.shaping.group import Groups, combine_contained
from alertd.shaping.silence import OWN_RULE, Silences
from alertd.storage.store import FORGET_AFTER, Store, write_failure

log = logging.getLogger("alertd")



class Recorder(Protocol):
    """An observer of every input the core takes (`alertd record`, `demo --record`)."""

    def frame(self, src: Source, frame: dict[str, Any]) -> None: ...
    def catch_up(self, src: Source, frames: list[dict[str, Any]], since: float,
                 complete: bool = True) -> None: ...
    def status(self, src: Source, status: str, reason: str) -> None: ...


BASELINE = "#rest"
"""Beside a stream's key in `streams`: when its first complete REST catch-up began."""


class Pipeline:
    """The pure core shared by every way of running alertd."""

    def __init__(self, rules: RuleSet, store: Store, *,
                 on_queued: Callable[[Iterable[str]], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.rules = rules
        self.store = store
        self.outbox = Outbox(store)
        self.groups = Groups(store)
        self.detector = Detector(store)
        self.watched = Watched(store)
        self.armed = Armed(store)
        self.silences = Silences(store)
        self.validators = Validators()
        self.drops = DropLog()
        self.detector.on_history = lambda src, detail: self.drops.add(
            src, Drop("history", detail), what="stale update")
        self.faults = FaultLog(lambda: self.clock())
        self.bursts = BurstWatch(time.monotonic)
        self.on_queued = on_queued
        self._unlogged: list[str] = []
        store.on_commit = self._committed
        store.on_abandon = self._abandoned
        self.clock = clock
        self.frames = 0
        self.alerts = 0
        self.stream_frames: Counter[str] = Counter()
        """Frames taken per stream (`Source.key`), for the metrics."""
        self.rule_alerts: Counter[str] = Counter()
        """Alerts queued per rule (not those a silence held), for the metrics."""
        self.messages = 0
        """Alerts queued for sending: rule alerts after grouping, notices, alertd's own."""
        self.recorder: Recorder | None = None
        """Set by `alertd record` and `demo --record`: every input is written there."""

    def raw(self, src: Source, raw: bytes | str) -> list[Alert]:
        """Decode and process one raw frame (what a socket delivers)."""
        try:
            frame = decode(raw)
        except Drop as drop:
            return self.drop(src, drop)
        return self.frame(src, frame)

    def drop(self, src: Source, drop: Drop) -> list[Alert]:
        """Count a dropped frame; a burst of invalid ones becomes a `stream` event."""
        self.drops.add(src, drop)
        if drop.reason not in INVALID:
            return []
        burst = self.bursts.add(src.key)
        if not burst:
            return []
        reason = (f"{burst} invalid frames from {src.exchange} account {src.account} "
                  f"({src.market}) in {BURST_WINDOW / 60:.0f} min; the exchange may have "
                  f"changed its format. Last one ({drop.reason}): {drop.detail[:200]}")
        log.error("%s: %s", src.key, reason)
        return self.stream_status(src, "invalid_messages", reason)

    def catch_up(self, src: Source, frames: list[dict[str, Any]], watched_since: float,
                 complete: bool = True) -> list[Alert]:
        """Frames restated over REST after a gap: fills not seen before are announced, marked
        `caught_up`. On a stream never watched before, what happened before `watched_since`
        (when the catch-up began) is history, recorded quietly. On one watched live but never
        given a `complete` catch-up (its first failed, and the socket came up without it),
        what happened before its first live frame is history: else the retry would announce
        the account's last day of fills as news. The core commits it on its timer."""
        if self.recorder is not None:
            self.recorder.catch_up(src, frames, watched_since, complete)
        first = self.watched.since(src.key)
        history_until: float | None = watched_since if first is None else None
        if first is not None and self.watched.since(f"{src.key}{BASELINE}") is None:
            history_until = first - 0.001  # stamped in the very ms of the first look: news
        caught = dataclasses.replace(src, catching_up=True)
        alerts: list[Alert] = []
        for frame in frames:
            alerts += self.frame(caught, frame, history_until=history_until)
        if complete:
            with self.store.transaction(defer=True):
                self.watched.mark(f"{src.key}{BASELINE}", watched_since)
        return alerts

    def frame(self, src: Source, frame: dict[str, Any],
              history_until: float | None = None) -> list[Alert]:
        """Validate, normalise and process one decoded data frame. What it shows up to
        `history_until` (epoch seconds) is history; by default a snapshot on a stream never
        watched before is history entirely."""
        if self.recorder is not None and not src.catching_up:
            self.recorder.frame(src, frame)
        now = self.clock()
        try:
            exchange = EXCHANGES[src.exchange]
            key = self.validators.check(exchange, frame, src.market)
            observations = exchange.normalise(key, frame, src.market, now)
            snapshot = exchange.snapshot(key, frame)
        except Drop as drop:
            return self.drop(src, drop)
        except Exception as exc:  # the schema let through what normalise cannot read: a bug
            self.faults.log(logging.DEBUG, exc, "%s: unreadable frame", src.key)
            return self.drop(src, Drop("unreadable", f"{type(exc).__name__}: {exc}"))
        self.frames += 1
        self.stream_frames[src.key] += 1
        try:
            return self.observe(src, observations, snapshot, history_until, channel=key)
        except Exception as exc:  # a bug must cost one frame, never the stream
            if write_failure(exc):
                raise
            self.faults.log(logging.ERROR, exc, "%s: internal error on a frame; it was dropped",
                            src.key)
            self.drops.add(src, Drop("internal_error", f"{type(exc).__name__}: {exc}"))
            return []

    def system_alert(self, title: str, body: str, severity: str,
                     notify: Iterable[str]) -> None:
        """An alert from alertd itself (a failed reload, an alert given up on), queued durably."""
        notify = tuple(notify)
        if not notify:
            log.error("no notifier to tell: %s: %s", title, body)
            return
        alert = Alert(rule="alertd", kind="system", account="-", severity=severity, title=title,
                      body=body, notify=notify)
        with self.store.transaction():
            self._queue(alert)

    def swap_rules(self, rules: RuleSet) -> list[Alert]:
        """Put reloaded rules in force. A level rule that is new (or whose trigger changed)
        is checked at once against the last balances and positions seen, so a level that
        already holds fires now, not at its next change."""
        old = {r.key for r in self.rules.rules}
        added = RuleSet(r for r in rules.rules if r.level and r.key not in old)
        self.rules = rules
        alerts: list[Alert] = []
        if not added.rules:
            return alerts
        with self.store.transaction():
            for event in self.detector.last.all():
                for alert in evaluate(event, added, self.armed):
                    if self._queue(alert, event):
                        alerts.append(alert)
        self.alerts += len(alerts)
        return alerts

    def remind(self) -> list[Alert]:
        """Say again what still holds: a level rule with `repeat` whose `when` held for that
        long since it was last said (the last value seen is checked again, so a level that
        recovered unnoticed is not repeated). Run on a timer; durable like any alert."""
        alerts: list[Alert] = []
        due = [r for r in self.rules.rules if r.repeat is not None]
        if not due:
            return alerts
        now = self.store.clock()
        with self.store.transaction():
            for rule in due:
                every, title = rule.repeat  # type: ignore[misc]
                for subject in self.armed.disarmed_before(rule.key, now - every):
                    event = self.detector.last.get(subject)
                    if event is None or not rule.when(event.fields):  # type: ignore[misc]
                        continue
                    alert = render(rule, event, (title, rule.message))
                    self.armed.disarm(rule.key, subject)
                    if self._queue(alert, event, "reminder"):
                        alerts.append(alert)
        self.alerts += len(alerts)
        return alerts

    def reports(self) -> list[Alert]:
        """Queue the scheduled reports that are due (each once: the state file records the
        period in the same transaction). Run on a timer and at start."""
        alerts: list[Alert] = []
        if not self.rules.reports:
            return alerts
        with self.store.transaction():
            for report in self.rules.reports:
                period = reports.due(report, self.store)
                if period is None:
                    continue
                alert = reports.render(report, self.store, *period)
                self.outbox.add(alert)
                self.messages += 1
                self._unlogged.append(f"report {report.name} [{','.join(alert.notify)}] "
                                      f"{alert.title}")
                alerts.append(alert)
        return alerts

    def flush(self) -> None:
        """Release the groups that are due and commit (the core calls this when idle)."""
        self.faults.tick()
        if self.groups.due_in() == 0.0:
            self.release()
        self.store.flush()

    def release(self) -> list[Alert]:
        """Groups whose wait is over leave as one alert each, in the transaction that
        removes them."""
        with self.store.transaction(defer=True):
            return self._send_groups(self.groups.take_due())

    def _send_groups(self, groups: list[list[Alert]]) -> list[Alert]:
        alerts: list[Alert] = []
        for members in groups:
            rule = self.rules.by_name.get(members[0].rule)
            render, counted = None, False
            if rule is not None and rule.on == members[0].kind:
                render = lambda f, r=rule: (r.title.render(f), r.message.render(f))  # noqa: E731
                counted = "fills" in rule.title.fields
            alert = combine_contained(members, render, counted)
            self.outbox.add(alert, rule.quiet if rule is not None else None)
            self.messages += 1
            if len(members) > 1:
                self._unlogged.append(f"alert {alert.rule} [{','.join(alert.notify)}] "
                                      f"{len(members)} grouped as one: {alert.title}")
            alerts.append(alert)
        return alerts

    def prune(self, finished: frozenset[str], rule_keys: frozenset[str] | None = None) -> int:
        """Housekeeping of every stage's tables in one transaction, each by its owner:
        finished orders and their fills, sent alerts, the fill log, the armed state of
        rules gone."""
        now = self.store.clock()  # the clock the rows were stamped with
        with self.store.transaction():
            return (self.detector.book.prune(finished, now)
                    + self.outbox.prune(now - FORGET_AFTER)
                    + fill_log.prune(self.store, now - FORGET_AFTER)
                    + self.armed.prune(rule_keys, now)
                    + self.silences.prune(now - FORGET_AFTER))

    def due_in(self) -> float | None:
        """Seconds until the core has work of its own: a commit or a group to release."""
        due = [d for d in (self.store.flush_due_in(), self.groups.due_in()) if d is not None]
        return min(due) if due else None

    def stream_status(self, src: Source, status: str, reason: str) -> list[Alert]:
        """Record a connection state change reported by a source."""
        if self.recorder is not None:
            self.recorder.status(src, status, reason)
        return self.observe(src, [StreamObs(status, reason, iso(None, self.clock()))])

    def observe(self, src: Source, observations: list[Observation], snapshot: bool = False,
                history_until: float | None = None, channel: str | None = None) -> list[Alert]:
        """Detect and evaluate in one transaction. A data frame (one with a `channel`; a
        status change shows nothing of the account) records that its stream is watched from
        now on, and the first snapshot ever of each channel is history entirely: it shows
        what happened before alertd watched that channel."""
        alerts: list[Alert] = []
        mark = len(self._unlogged)
        try:
            with self.store.transaction(defer=True):
                if channel is not None and self._first_look(src, channel, snapshot) \
                        and history_until is None:
                    history_until = math.inf
                for obs in observations:
                    for event in self.detector.observe(src, obs, history_until):
                        alerts += self._handle(event)
        except BaseException:
            del self._unlogged[mark:]
            raise
        self.alerts += len(alerts)
        return alerts

    def _first_look(self, src: Source, channel: str, snapshot: bool) -> bool:
        """Mark the stream (and a snapshot's channel) watched; True for the first snapshot
        ever of its channel."""
        now = self.clock()
        self.watched.mark(src.key, now)
        if not snapshot:
            return False
        key = f"{src.key}#{channel}"
        first = self.watched.since(key) is None
        self.watched.mark(key, now)
        return first

    def event(self, event: Event) -> list[Alert]:
        """A neutral event straight to the rules, past the exchanges and detection (rule
        tests and `explain` write events by hand)."""
        with self.store.transaction():
            alerts = self._handle(event)
        self.alerts += len(alerts)
        return alerts

    def _handle(self, event: Event) -> list[Alert]:
        """One detected event: logged for reports if a fill, evaluated, its alerts queued;
        call inside a transaction."""
        if event.kind == "fill":
            log_fill(self.store, epoch(event.fields["time"]) or self.clock(), event.fields)
        elif event.kind == CORRECTION:  # for reports only: the fill was announced already
            correct_fill(self.store, epoch(event.fields["time"]) or self.clock(), event.fields)
            return []
        alerts = evaluate(event, self.rules, self.armed)
        # a rule's alert without fields is its resolved notice (evaluate renders no other)
        return [a for a in alerts
                if self._queue(a, event, "resolved" if a.fields is None else "alert")]

    def end_silences(self) -> list[Alert]:
        """Levels whose firing a silence held and that still hold now that it has ended (run
        out, or `alertd silence expire`) are said now, once each; the others are forgotten.
        Run every second on the core's timer, so a silence that ended while alertd was down
        is seen at start."""
        now = self.clock()
        with self.store.lock:
            self.silences.refresh(now)
            ended = self.silences.ended(now)
        alerts: list[Alert] = []
        if not ended:
            return alerts
        with self.store.transaction():
            for silence_id, name, rule_key, subject in ended:
                self.silences.forget(rule_key, subject)
                rule = self.rules.by_name.get(name)
                event = self.detector.last.get(subject)
                if rule is None or rule.key != rule_key or rule.when is None or event is None \
                        or (rule.accounts is not None and event.account not in rule.accounts) \
                        or not self.armed.is_disarmed(rule_key, subject) \
                        or not rule.when(event.fields):
                    continue
                alert = render(rule, event)
                self.armed.disarm(rule_key, subject)  # its reminders count from now
                if self._queue(alert, event):
                    self._unlogged.append(f"silence {silence_id} has ended and {name} still "
                                          f"holds on {subject}: said now")
                    alerts.append(alert)
        self.alerts += len(alerts)
        return alerts

    def _silenced(self, alert: Alert, event: Event, role: str) -> bool:
        """Whether a silence holds this alert (then it is counted on it and logged). A held
        level firing is remembered: its resolved notice and reminders are held with it, and
        `end_silences` says it if it still holds at the end. A resolved notice is held only
        then, never by a silence itself: one whose firing was sent is sent, silence or not."""
        rule = self.rules.by_name.get(alert.rule)
        if rule is None or alert.rule == OWN_RULE:
            return False
        held = self.silences.held(rule.key, event.subject) if role != "alert" else None
        if role == "resolved":
            if held is None:
                return False
            self.silences.forget(rule.key, event.subject)
            silence_id = held
        else:
            silence = self.silences.match(alert, event.fields, self.clock())
            firing = role == "alert" and rule.level and rule.when is not None
            if silence is None and held is None:
                if firing:
                    self.silences.forget(rule.key, event.subject)  # said: nothing waits
                return False
            silence_id = held if held is not None else silence.id  # type: ignore[union-attr]
            if firing:
                self.silences.remember(silence_id, rule.name, rule.key, event.subject)
        self.silences.count(silence_id)
        self.silences.note(f"silenced {alert.rule} by silence {silence_id}: {alert.title}")
        return True

    def _queue(self, alert: Alert, event: Event | None = None, role: str = "alert") -> bool:
        """Into its group or the outbox, unless a silence holds it (False); its log line waits
        for the commit (`_committed`). `event` raised a rule's alert; `role`: `alert`, or the
        rule's `resolved` notice or `reminder`."""
        if event is not None and self._silenced(alert, event, role):
            return False
        self.rule_alerts[alert.rule] += 1
        rule = self.rules.by_name.get(alert.rule) if alert.rule != "alertd" else None
        if rule is not None and alert.fields is not None and rule.group.wait > 0:
            self.groups.hold(alert, rule.group)
        else:
            if rule is not None and rule.group.wait > 0:
                self._send_groups(self.groups.take_rule(rule.name))  # what it follows first
            self.outbox.add(alert, rule.quiet if rule is not None else None)
            self.messages += 1
        self._unlogged.append(f"alert {alert.rule} [{','.join(alert.notify)}] {alert.title}: "
                              f"{alert.body}")
        return True

    def _abandoned(self) -> None:
        self._unlogged.clear()
        self.groups.reload()

    def _committed(self, notifiers: set[str]) -> None:
        """Alerts are logged once on disk, never before: a log line is a promise."""
        lines, self._unlogged[:] = list(self._unlogged), []
        for line in lines:
            log.info("%s", line)
        if self.on_queued is not None:
            self.on_queued(notifiers)

    def flush_due_in(self) -> float | None:
        """Seconds until queued work must be committed; sources wait no longer than this."""
        return self.store.flush_due_in()
