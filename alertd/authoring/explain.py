"""`alertd explain`: for one event, which rules fire and, for the others, the first condition
that fails, with the rule's value and the event's."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alertd.authoring.ruletest import parse_event
from alertd.common.errors import LoadError, Problem
from alertd.common.yamlsrc import LDict, load_yaml
from alertd.domain.events import Event, fields_of
from alertd.domain.observations import Source
from alertd.rules.conditions import why_not
from alertd.rules.evaluate import render
from alertd.rules.model import RuleSet


def load_event(path: Path) -> Event:
    """An event file: YAML or JSON, `kind` and the fields (account defaults to main)."""
    data = load_yaml(path)
    problems: list[Problem] = []
    spec = data if isinstance(data, LDict) else None
    src = Source(str((spec or {}).get("account", "main")),
                 str((spec or {}).get("exchange", "deltadefi")),
                 str((spec or {}).get("market", "spot")))
    event = parse_event(spec, src, path, getattr(data, "line", 1), problems)
    if event is None:
        raise LoadError(problems)
    return event


def explain(rules: RuleSet, event: Event) -> list[str]:
    """Lines for a person: each rule on the event's kind, fires or why not."""
    fields = event.fields
    shown = ", ".join(f"{k} {v}" for k, v in fields.items()
                      if v is not None and k not in ("account", "exchange", "market", "time"))
    lines = [f"event: {event.kind} on {fields['account']}: {shown}"]
    others = 0
    for rule in rules.rules:
        if rule.on != event.kind:
            others += 1
            continue
        where = f"{rule.name} ({rule.file}:{rule.line})"
        reason = _why_not(rule, event)
        if reason is not None:
            lines.append(f"  no     {where}: {reason}")
            continue
        alert = render(rule, event)
        lines.append(f"  FIRES  {where} -> {', '.join(rule.notify)}")
        lines.append(f"         {alert.title} / {alert.body}")
        if rule.level and rule.when is not None:
            lines.append(f"         (a level rule: it fires when this first holds for "
                         f"{event.subject}, then stays quiet until it re-arms)")
        elif rule.group.wait:
            lines.append(f"         (grouped: waits up to {rule.group.wait:g} s for alerts "
                         f"with the same {', '.join(rule.group.by) or 'rule'})")
    if len(lines) == 1:
        lines.append(f"  no rule is on '{event.kind}' events")
    if others:
        lines.append(f"  ({others} rules on other kinds of event)")
    return lines


def _why_not(rule: Any, event: Event) -> str | None:
    account = event.fields["account"]
    if rule.accounts is not None and account not in rule.accounts:
        return f"accounts {', '.join(sorted(rule.accounts))}: the event is on {account}"
    if rule.when is None:
        return None if event.changed else "no 'when', and the value did not change"
    return why_not(rule.spec["when"], fields_of(rule.on), event.fields)
