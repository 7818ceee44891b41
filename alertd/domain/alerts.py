"""Alerts as every stage after the rules sees them, and the one order of severities."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("info", "success", "warning", "failure")
"""Apprise's notify types, least to most urgent."""

@dataclass(frozen=True, slots=True)
class Alert:
    """A rendered alert, before it is fanned out to its notifiers."""

    rule: str
    kind: str
    account: str
    severity: str
    title: str
    body: str
    notify: tuple[str, ...]
    fields: Mapping[str, Any] | None = field(default=None, compare=False, repr=False)
    """The event behind a rule's alert, for grouping; None for notices and alertd's own."""


def highest(severities: Iterable[str]) -> str:
    """The most urgent of several (a group's or a digest's severity)."""
    return max(severities, key=lambda s: SEVERITIES.index(s) if s in SEVERITIES else 0)
