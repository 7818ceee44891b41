"""Events + rules → alerts, with edge-triggering for level events.

A rule on a level kind (balance, position, stream) fires when its `when` becomes true for a
subject and then stays quiet until it re-arms; the armed state lives in the store so that a
restart neither repeats nor forgets an alert.
"""

from __future__ import annotations

import logging

from alertd.domain.alerts import Alert
from alertd.domain.events import Event
from alertd.domain.templates import Template
from alertd.rules.armed import Armed
from alertd.rules.model import Rule, RuleSet

log = logging.getLogger("alertd")


def evaluate(event: Event, rules: RuleSet, armed: Armed) -> list[Alert]:
    """The alerts this event raises; call inside the store transaction that recorded it."""
    alerts: list[Alert] = []
    fields = event.fields
    for rule in rules.candidates(event.kind, fields):
        if rule.accounts is not None and fields["account"] not in rule.accounts:
            continue
        if rule.when is None:
            fire = event.changed
        elif not rule.level:
            fire = rule.when(fields)
        else:
            fire = _edge(rule, event, armed)
            if fire is None and rule.resolved is not None:
                alerts.append(render(rule, event, rule.resolved, "success"))
        if fire:
            alerts.append(render(rule, event))
    return alerts


def _edge(rule: Rule, event: Event, armed: Armed) -> bool | None:
    """True when the rule fires, None when it re-arms (the level recovered), else False."""
    holds = rule.when(event.fields)  # type: ignore[misc]
    if armed.is_disarmed(rule.key, event.subject):
        rearmed = rule.rearm(event.fields) if rule.rearm is not None else not holds
        if rearmed:
            armed.rearm(rule.key, event.subject)
            return None
        return False
    if holds:
        armed.disarm(rule.key, event.subject)
        return True
    return False


def render(rule: Rule, event: Event, texts: tuple[Template, Template] | None = None,
           severity: str | None = None) -> Alert:
    """The alert's text; should a template ever fail, the raw fields go out instead."""
    title_t, message_t = texts or (rule.title, rule.message)
    try:
        title, body = title_t.render(event.fields), message_t.render(event.fields)
    except Exception as exc:
        log.exception("rule %s: template failed (%s); sending the raw fields", rule.name, exc)
        title = f"{rule.name}: {event.kind} on {event.account}"
        body = ", ".join(f"{k}={v}" for k, v in event.fields.items())
    return Alert(rule=rule.name, kind=event.kind, account=event.account,
                 severity=severity or rule.severity, title=title, body=body, notify=rule.notify,
                 fields=None if texts else event.fields)
