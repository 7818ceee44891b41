"""Rule files: every `*.yaml`/`*.yml` under the rules folder holds a top-level `rules:` list.

Loading checks everything a rule could get wrong (fields, operators, regexes, templates,
notifier and account names, duplicates) and reports all of it as `file:line: message`.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Callable, Iterable
from decimal import Decimal
from pathlib import Path
from typing import Any

from alertd.common.errors import LoadError, Problem
from alertd.common.suggest import did_you_mean
from alertd.common.timespec import duration
from alertd.common.yamlsrc import LDict, load_yaml, paused_gc, unknown_keys
from alertd.domain.alerts import SEVERITIES
from alertd.domain.events import (
    DEFAULT_TEMPLATES,
    EVENT_KINDS,
    LEVEL_KINDS,
    RESOLVED_MESSAGES,
    FieldType,
    fields_of,
)
from alertd.domain.quiet import QuietError, parse_quiet
from alertd.domain.templates import Template, TemplateError
from alertd.rules.conditions import ConditionError, Predicate, compile_when
from alertd.rules.files import MAX_RULE_FILES, TEST_SUFFIXES, find_rule_files, rule_files
from alertd.rules.model import Rule, RuleSet
from alertd.shaping.group import DEFAULT_BY, DEFAULT_WAIT, Grouping
from alertd.shaping.reports import Report, ReportError, parse_report

RULE_KEYS = ("name", "on", "accounts", "when", "rearm", "resolved", "repeat", "group_by",
             "group_wait", "quiet", "notify", "severity", "title", "message")
MAX_GROUP_WAIT = 3600.0
MAX_RULES = 10_000
"""Rules in all files together: a rule set past this is a generator gone wrong (every rule is
compiled at each reload and indexed in memory), and it loads in about a second."""
MAX_REPORTS = 1_000
MAX_RULE_BYTES = 16 * 1024 * 1024
"""Bytes of rule files in all: 10,000 rules take 2 to 4 MiB, and each file is bounded too
(`alertd.common.yamlsrc.MAX_FILE_BYTES`)."""


def load_rules(directory: Path, notifiers: Iterable[str] | None,
               accounts: Iterable[str] | None = None) -> RuleSet:
    """Load and check every rule file; raises LoadError listing all problems.

    `notifiers=None` accepts any notifier name (the demo routes them all to the terminal).
    """
    if not directory.is_dir():
        raise LoadError([Problem(directory, 1, "rules folder not found; pass --rules DIR")])
    problems: list[Problem] = []
    files = find_rule_files(directory, problems)
    if not files and not problems:
        raise LoadError([Problem(directory, 1, "no *.yaml or *.yml rule files in this folder")])
    return _load(files, notifiers, accounts, problems)


def load_rule_files(files: Iterable[Path], notifiers: Iterable[str] | None,
                    accounts: Iterable[str] | None = None) -> RuleSet:
    """Load and check these rule files (see `load_rules`)."""
    return _load(list(files), notifiers, accounts, [])


def _load(files: list[Path], notifiers: Iterable[str] | None, accounts: Iterable[str] | None,
          problems: list[Problem]) -> RuleSet:
    """The rule set of `files`, or a LoadError with `problems` and every one found here.

    Collection pauses while the files load (as in `load_yaml`: the rules are kept anyway);
    a file that still exhausts memory or the stack is a problem of that file."""
    known = set(notifiers) if notifiers is not None else None
    account_names = set(accounts) if accounts is not None else None
    rules: list[Rule] = []
    reports: list[Report] = []
    report_seen: dict[str, Problem] = {}
    first_seen: dict[str, Problem] = {}
    counts = {"bytes": 0, "rules": 0, "reports": 0}
    with paused_gc():
        for path in files[:MAX_RULE_FILES]:
            try:
                if not _load_file(path, known, account_names, counts, rules, reports,
                                  report_seen, first_seen, problems):
                    break
            except (RecursionError, MemoryError) as exc:
                problems.append(Problem(path, 1, "too large or too deeply nested to check "
                                        f"({type(exc).__name__})"))
        if len(files) > MAX_RULE_FILES:
            problems.append(Problem(files[MAX_RULE_FILES], 1, f"more than {MAX_RULE_FILES} "
                                    "rule files; merge some"))
        if problems:
            raise LoadError(problems)
        return RuleSet(rules, reports)


def _load_file(path: Path, known: set[str] | None, account_names: set[str] | None,
               counts: dict[str, int], rules: list[Rule], reports: list[Report],
               report_seen: dict[str, Problem], first_seen: dict[str, Problem],
               problems: list[Problem]) -> bool:
    """Load one rule file into `rules` and `reports`; False once a bound on all files
    together (MAX_RULE_BYTES, MAX_RULES, MAX_REPORTS) is crossed, so loading stops there."""
    with contextlib.suppress(OSError):  # if it cannot be read, load_yaml says why
        counts["bytes"] += path.stat().st_size
    if counts["bytes"] > MAX_RULE_BYTES:
        problems.append(Problem(path, 1, f"the rule files are larger than {MAX_RULE_BYTES >> 20}"
                                " MiB together; this one and those after it were not read"))
        return False
    try:
        data = load_yaml(path)
    except LoadError as exc:
        problems.extend(exc.problems)
        return True
    if data is None:
        return True
    if not isinstance(data, LDict) or not isinstance(data.get("rules", []), list) or (
            "rules" not in data and "reports" not in data):
        problems.append(Problem(path, getattr(data, "line", 1),
                                "a rule file holds a top-level 'rules:' list (and/or "
                                "'reports:')"))
        return True
    for key in data:
        if key not in ("rules", "reports"):
            problems.append(Problem(path, data.line_of(key), f"unknown top-level key "
                                    f"'{key}'; only 'rules' and 'reports' are read"))
    items = data.get("rules") or []
    for what, many, limit in (("reports", data.get("reports"), MAX_REPORTS),
                              ("rules", items, MAX_RULES)):
        if isinstance(many, list) and counts[what] + len(many) > limit:
            problems.append(Problem(path, many.line_of(limit - counts[what]), f"this is "
                                    f"{what[:-1]} number {limit + 1}; alertd loads at most "
                                    f"{limit} {what} (in all files together)"))
            return False
        counts[what] += len(many) if isinstance(many, list) else 0
    reports += _reports(path, data, known, report_seen, problems)
    for i, item in enumerate(items):
        where = Problem(path, items.line_of(i), "")
        rule = _rule(item, where, known, account_names, problems)
        if rule is not None and _first(first_seen, "rule", rule.name, path, rule.line,
                                       problems):
            rules.append(rule)
    return True


def _reports(path: Path, data: LDict, known: set[str] | None, seen: dict[str, Problem],
             problems: list[Problem]) -> list[Report]:
    items = data.get("reports")
    if items is None:
        return []
    if not isinstance(items, list):
        problems.append(Problem(path, data.line_of("reports"), "'reports' is a list of reports "
                                "(name, every, tz, notify, include)"))
        return []
    out: list[Report] = []
    for i, item in enumerate(items):
        if not isinstance(item, LDict):
            problems.append(Problem(path, items.line_of(i), "each report is a mapping (name, "
                                    "every, tz, notify, include)"))
            continue
        try:
            report = parse_report(item, known)
        except ReportError as exc:
            problems.append(Problem(path, item.line_of(getattr(exc, "key", "name")), str(exc)))
            continue
        if _first(seen, "report", report.name, path, item.line, problems):
            out.append(dataclasses.replace(report, file=str(path), line=item.line))
    return out


def _first(seen: dict[str, Problem], what: str, name: str, path: Path, line: int,
           problems: list[Problem]) -> bool:
    """True where a name is first defined; a second definition is a problem naming both."""
    if name in seen:
        prev = seen[name]
        problems.append(Problem(path, line, f"duplicate {what} name '{name}' (first defined "
                                f"at {prev.file}:{prev.line})"))
        return False
    seen[name] = Problem(path, line, "")
    return True


def _rule(item: Any, where: Problem, notifiers: set[str] | None, accounts: set[str] | None,
          problems: list[Problem]) -> Rule | None:
    path = where.file
    if not isinstance(item, LDict):
        problems.append(Problem(path, where.line, "each rule is a mapping (name, on, notify, ...)"))
        return None
    before = len(problems)

    def bad(key: str, message: str, line: int | None = None) -> None:
        problems.append(Problem(path, line or item.line_of(key), message))

    unknown_keys(item, RULE_KEYS, path, problems, "rule")
    name = item.get("name")
    if not isinstance(name, str) or not name.strip():
        bad("name", "every rule needs a 'name'")
        return None
    label = f"rule '{name}'"
    on = item.get("on")
    if on not in EVENT_KINDS:
        bad("on", f"{label}: 'on' must be one of: {', '.join(EVENT_KINDS)}")
        return None
    fields = fields_of(on)

    def condition(key: str) -> Predicate | None:
        if key not in item:
            return None
        try:
            return compile_when(item[key], fields)
        except ConditionError as exc:
            bad(key, f"{label}: {key}: {exc}", exc.line)
            return None

    when, rearm = condition("when"), condition("rearm")
    if "rearm" in item and on not in LEVEL_KINDS:
        bad("rearm", f"{label}: 'rearm' applies to level events ({', '.join(sorted(LEVEL_KINDS))});"
            f" every '{on}' event is new, so remove it")
    if "rearm" in item and "when" not in item:
        bad("rearm", f"{label}: 'rearm' needs a 'when' to re-arm")

    notify = item.get("notify")
    if isinstance(notify, str):
        notify = [notify]
    if not isinstance(notify, list) or not notify or not all(isinstance(n, str) for n in notify):
        bad("notify", f"{label}: 'notify' lists notifier names from the config")
        notify = []
    for i, target in enumerate(notify):
        if notifiers is not None and target not in notifiers:
            line = notify.line_of(i) if hasattr(notify, "line_of") else None
            bad("notify", f"{label}: unknown notifier '{target}'"
                f"{did_you_mean(target, notifiers)}; the config defines: "
                f"{', '.join(sorted(notifiers)) or 'none'}", line)

    accounts_raw = item.get("accounts")
    account_set = None
    if accounts_raw is not None:
        if isinstance(accounts_raw, str):
            accounts_raw = [accounts_raw]
        if not isinstance(accounts_raw, list) or not accounts_raw:
            bad("accounts", f"{label}: 'accounts' lists account names from the config")
        else:
            account_set = frozenset(str(a) for a in accounts_raw)
            unknown = sorted(account_set - accounts) if accounts is not None else []
            if unknown:
                bad("accounts", f"{label}: unknown account {', '.join(unknown)}"
                    f"{did_you_mean(unknown[0], accounts or ())}; the config "
                    f"defines: {', '.join(sorted(accounts or ())) or 'none'}")

    severity = item.get("severity", "info")
    if severity not in SEVERITIES:
        bad("severity", f"{label}: severity must be one of: {', '.join(SEVERITIES)}")

    templates = []
    for key, default in zip(("title", "message"), DEFAULT_TEMPLATES[on], strict=True):
        text = item.get(key, default)
        if not isinstance(text, str):
            bad(key, f"{label}: {key} must be text")
            text = default
        try:
            templates.append(Template(text, fields))
        except TemplateError as exc:
            bad(key, f"{label}: {key}: {exc}")
            templates.append(Template(default, fields))

    resolved = _resolved(item, on, fields, templates[0].source, label, bad)
    repeat = None
    if "repeat" in item:
        seconds = duration(item["repeat"])
        if seconds is None:
            bad("repeat", f"{label}: repeat is a duration such as 30m, 4h or 1d")
        elif on not in LEVEL_KINDS or "when" not in item:
            bad("repeat", f"{label}: 'repeat' applies to level rules with a 'when' "
                f"({', '.join(sorted(LEVEL_KINDS))})")
        else:
            repeat = seconds, Template(f"Still: {templates[0].source}", fields)
    group = _grouping(item, on, fields, label, bad)
    quiet = None
    if "quiet" in item:
        try:
            quiet = parse_quiet(item["quiet"])
        except QuietError as exc:
            bad("quiet", f"{label}: {exc}")
    if len(problems) > before:
        return None
    trigger = repr((on, _plain(item.get("when")), _plain(item.get("rearm"))))
    index = _index_key(item.get("when"), fields, on) if when is not None else None
    key = f"{name}#{hashlib.sha1(trigger.encode()).hexdigest()[:10]}"
    return Rule(name=name, on=on, notify=tuple(notify), severity=severity, title=templates[0],
                message=templates[1], when=when, rearm=rearm, accounts=account_set,
                file=str(path), line=where.line, key=key, index=index, resolved=resolved,
                repeat=repeat, group=group, quiet=quiet, spec=item)


def _grouping(item: LDict, on: str, fields: dict[str, FieldType], label: str,
              bad: Callable[..., None]) -> Grouping:
    """`group_by: [symbol]` and `group_wait: 5s` (0 sends each alert alone, at once)."""
    wait = DEFAULT_WAIT
    if "group_wait" in item:
        raw = item["group_wait"]
        seconds = 0.0 if str(raw).strip() in ("0", "0s", "0.0") else duration(raw)
        if seconds is None or seconds > MAX_GROUP_WAIT:
            bad("group_wait", f"{label}: group_wait is a duration up to 1h, such as 2s or 1m, "
                "or 0 to send each alert alone")
        else:
            wait = seconds
    by = DEFAULT_BY.get(on, ())
    if "group_by" in item:
        raw = item["group_by"]
        if isinstance(raw, str):
            raw = [raw]
        if not isinstance(raw, list) or not all(isinstance(f, str) for f in raw):
            bad("group_by", f"{label}: group_by lists field names, such as [account, symbol]")
        else:
            unknown = [f for f in raw if f not in fields]
            if unknown:
                bad("group_by", f"{label}: group_by: unknown field {', '.join(unknown)} for "
                    f"'{on}' events; fields are: {', '.join(fields)}")
            by = tuple(raw)
    return Grouping(by, wait)


def _resolved(item: LDict, on: str, fields: dict[str, FieldType], title: str, label: str,
              bad: Callable[..., None]) -> tuple[Template, Template] | None:
    """`resolved: true` (default texts) or `resolved: {title: ..., message: ...}`."""
    spec = item.get("resolved", False)
    if spec is False:
        return None
    if on not in LEVEL_KINDS:
        bad("resolved", f"{label}: 'resolved' applies to level events "
            f"({', '.join(sorted(LEVEL_KINDS))}); a '{on}' event never recovers")
        return None
    if "when" not in item:
        bad("resolved", f"{label}: 'resolved' needs a 'when': it is sent when that stops holding")
        return None
    texts = {"title": f"Resolved: {title}", "message": RESOLVED_MESSAGES[on]}
    if isinstance(spec, LDict) and set(spec) <= set(texts):
        texts.update(spec)
    elif spec is not True:
        bad("resolved", f"{label}: 'resolved' is true, or a mapping with title and/or message")
        return None
    try:
        return Template(str(texts["title"]), fields), Template(str(texts["message"]), fields)
    except TemplateError as exc:
        bad("resolved", f"{label}: resolved: {exc}")
        return None


SUBJECT_FIELDS = {"balance": {"asset"}, "position": {"symbol"}, "stream": set()}
"""Fields that name a level rule's subject: the only ones it may be indexed by, since a level
rule must see its subject's other values too (they are what re-arm it)."""


def _index_key(when: Any, fields: dict[str, FieldType], on: str) -> tuple[str, str] | None:
    """A (field, value) every event the rule must see has: a top-level text equality (on a
    level rule, only one that names its subject)."""
    for name, spec in when.items():
        if fields.get(name) is not FieldType.STRING:
            continue
        if on in SUBJECT_FIELDS and name not in SUBJECT_FIELDS[on] | {"account", "exchange",
                                                                     "market"}:
            continue
        if isinstance(spec, dict) and set(spec) == {"eq"}:
            spec = spec["eq"]
        if isinstance(spec, str | int | float | Decimal) and not isinstance(spec, bool):
            return name, str(spec).casefold()
    return None


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return sorted((str(k), _plain(v)) for k, v in value.items())
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


__all__ = ["RULE_KEYS", "TEST_SUFFIXES", "Rule", "RuleSet", "duration", "load_rule_files",
           "load_rules", "rule_files"]
