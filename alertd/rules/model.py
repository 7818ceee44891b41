"""The rules as the pipeline uses them: a compiled `Rule` and the `RuleSet` that finds the
rules an event can fire (indexed by kind and subject). Loading them from YAML, with every
mistake a `file:line`, is `rules.load`'s job."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from alertd.domain.events import EVENT_KINDS, LEVEL_KINDS
from alertd.domain.quiet import Quiet
from alertd.domain.templates import Template
from alertd.rules.conditions import Predicate
from alertd.shaping.group import Grouping
from alertd.shaping.reports import Report


@dataclass(frozen=True, eq=False)
class Rule:
    """A compiled rule. `key` changes when its trigger changes, so an edited rule starts armed."""

    name: str
    on: str
    notify: tuple[str, ...]
    severity: str
    title: Template
    message: Template
    when: Predicate | None = None
    rearm: Predicate | None = None
    accounts: frozenset[str] | None = None
    file: str = ""
    line: int = 0
    key: str = ""
    index: tuple[str, str] | None = None
    resolved: tuple[Template, Template] | None = None
    """Title and message of the notice sent once when a level rule re-arms (`resolved:`)."""
    repeat: tuple[float, Template] | None = None
    """Seconds after which a level rule that still holds says so again (`repeat: 4h`), and
    the reminder's title ("Still: " + the rule's)."""
    spec: Any = None
    """The rule as written (`when`, `rearm`), for `alertd explain`."""
    group: Grouping = field(default_factory=Grouping)
    quiet: Quiet | None = None
    """Hours in which its alerts below failure wait, then go out as one digest."""
    """How its alerts wait for the ones that belong with them (`group_by`, `group_wait`)."""

    @property
    def level(self) -> bool:
        return self.on in LEVEL_KINDS


class RuleSet:
    """All loaded rules, indexed for the hot path.

    Rules are grouped by event kind, and a rule whose `when` requires a text field to equal a
    value (`symbol: ADAUSDM`) is only tried on events with that value, so a hundred
    per-symbol rules cost a dictionary lookup, not a hundred condition checks.
    """

    def __init__(self, rules: Iterable[Rule], reports: Iterable[Report] = ()) -> None:
        self.rules = tuple(rules)
        self.reports = tuple(reports)
        self.by_name = {rule.name: rule for rule in self.rules}
        self._order = {id(rule): i for i, rule in enumerate(self.rules)}
        by_kind: dict[str, list[Rule]] = {kind: [] for kind in EVENT_KINDS}
        for rule in self.rules:
            by_kind[rule.on].append(rule)
        self.by_kind = {kind: tuple(rs) for kind, rs in by_kind.items()}
        self._always: dict[str, tuple[Rule, ...]] = {}
        self._indexed: dict[str, dict[str, dict[str, list[Rule]]]] = {}
        for kind, rs in self.by_kind.items():
            self._always[kind] = tuple(r for r in rs if r.index is None)
            fields: dict[str, dict[str, list[Rule]]] = {}
            for r in rs:
                if r.index is not None:
                    fields.setdefault(r.index[0], {}).setdefault(r.index[1], []).append(r)
            self._indexed[kind] = fields

    def candidates(self, kind: str, fields: dict[str, object]) -> tuple[Rule, ...] | list[Rule]:
        """The rules that may match an event of `kind`, in file order."""
        indexed = self._indexed[kind]
        if not indexed:
            return self._always[kind]
        found: list[Rule] = list(self._always[kind])
        for name, by_value in indexed.items():
            value = fields.get(name)
            if isinstance(value, str):
                found.extend(by_value.get(value.casefold(), ()))
        if len(found) > 1:
            found.sort(key=lambda r: self._order[id(r)])
        return found

    def __len__(self) -> int:
        return len(self.rules)

    def summary(self) -> str:
        counts = [f"{len(rs)} {kind}" for kind, rs in self.by_kind.items() if rs]
        n = len(self.reports)
        reports = f", {n} report{'s' if n > 1 else ''}" if n else ""
        return f"{len(self.rules)} rules ({', '.join(counts) or 'none'}){reports}"

    def notifiers_used(self) -> set[str]:
        return {name for rule in self.rules for name in rule.notify} | {
            name for report in self.reports for name in report.notify}
