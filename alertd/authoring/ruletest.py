"""`alertd test`: rule unit tests written in YAML, run on the daemon's own core.

A test file (`*.test.yaml`, beside the rules) names its rule files and lists cases: input
frames (as an exchange sends them) or events (as rules see them), each at a time on a fake
clock, and the alerts expected. Each case runs on a fresh in-memory state file, so grouping,
edge-triggering, reminders and reports behave exactly as in the daemon, with no network.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from alertd.authoring.record import to_json
from alertd.common.errors import LoadError, Problem
from alertd.common.timespec import duration
from alertd.common.yamlsrc import LDict, load_yaml, unknown_keys
from alertd.detect.detector import level_subject
from alertd.domain.events import EVENT_KINDS, LEVEL_KINDS, Event, FieldType, fields_of
from alertd.domain.observations import Source, iso
from alertd.exchanges import EXCHANGES
from alertd.rules.conditions import ConditionError, coerce
from alertd.rules.files import TEST_SUFFIXES, rule_files
from alertd.rules.load import load_rule_files
from alertd.rules.model import RuleSet
from alertd.runtime.pipeline import Pipeline
from alertd.storage.store import Store

FILE_KEYS = ("rule_files", "start", "tests")
CASE_KEYS = ("name", "start", "input", "expect")
INPUT_KEYS = ("at", "frame", "event", "exchange", "account", "market")
EXPECT_KEYS = ("rule", "title", "message", "notify", "notifier")


class Clock:
    """The case's time: set by each input's `at`."""

    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@dataclass
class Input:
    at: float
    line: int
    src: Source
    frame: str | None = None
    event: Event | None = None


@dataclass
class Expected:
    line: int
    want: dict[str, str | re.Pattern[str]]


@dataclass
class Case:
    name: str
    line: int
    start: float
    inputs: list[Input] = field(default_factory=list)
    expect: list[Expected] = field(default_factory=list)


@dataclass(frozen=True)
class Sent:
    """One alert as the outbox holds it, with every notifier it goes to."""

    rule: str
    title: str
    message: str
    notify: tuple[str, ...]
    severity: str = "info"

    def describe(self) -> str:
        return (f"rule {self.rule}, notify {','.join(self.notify)}, title {self.title!r}, "
                f"message {self.message!r}")


def test_files(paths: Iterable[str]) -> list[Path]:
    """The test files named, and those in the folders named."""
    out: list[Path] = []
    for name in paths:
        path = Path(name)
        if path.is_dir():
            out += sorted(p for p in path.rglob("*") if p.name.endswith(TEST_SUFFIXES))
        else:
            out.append(path)
    return out


def load_tests(path: Path) -> tuple[RuleSet, list[Case]]:
    """The rules a test file names and its cases; a LoadError lists every problem."""
    data = load_yaml(path)
    problems: list[Problem] = []
    if not isinstance(data, LDict) or not isinstance(data.get("tests"), list):
        raise LoadError([Problem(path, getattr(data, "line", 1), "a rule test file holds "
                                 "'rule_files' (optional) and a 'tests:' list")])
    unknown_keys(data, FILE_KEYS, path, problems)
    names = data.get("rule_files")
    if names is None:
        files = rule_files(path.parent)
    elif isinstance(names, list) and all(isinstance(n, str) for n in names):
        files = [path.parent / n for n in names]
        for i, f in enumerate(files):
            if not f.is_file():
                problems.append(Problem(path, names.line_of(i), f"rule file {f} not found"))
    else:
        problems.append(Problem(path, data.line_of("rule_files"), "'rule_files' lists rule "
                                "files, relative to this file"))
        files = []
    start = _start(data.get("start"), path, data.line_of("start"), problems)
    cases = [c for i, item in enumerate(data["tests"])
             if (c := _case(item, path, data["tests"].line_of(i), start, problems)) is not None]
    if problems:
        raise LoadError(problems)
    return load_rule_files(files, None), cases


def _start(value: Any, path: Path, line: int, problems: list[Problem]) -> float:
    if value is None:
        return dt.datetime.now(dt.UTC).timestamp()
    try:
        when = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        problems.append(Problem(path, line, f"start is a time like \"2026-11-23T07:00:00Z\", "
                                f"not {value!r}"))
        return 0.0
    return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


def _case(item: Any, path: Path, line: int, start: float,
          problems: list[Problem]) -> Case | None:
    if not isinstance(item, LDict) or not isinstance(item.get("name"), str):
        problems.append(Problem(path, line, "each test is a mapping with a 'name', 'input' "
                                "and 'expect'"))
        return None
    unknown_keys(item, CASE_KEYS, path, problems, "test")
    if "start" in item:
        start = _start(item["start"], path, item.line_of("start"), problems)
    case = Case(item["name"], line, start)
    inputs, expects = item.get("input") or [], item.get("expect", [])
    if not isinstance(inputs, list) or not isinstance(expects, list):
        problems.append(Problem(path, line, "'input' and 'expect' are lists"))
        return None
    at = 0.0
    for i, raw in enumerate(inputs):
        got = _input(raw, path, inputs.line_of(i), at, problems)
        if got is not None:
            at = got.at
            case.inputs.append(got)
    for i, raw in enumerate(expects):
        want = _expected(raw, path, expects.line_of(i), problems)
        if want is not None:
            case.expect.append(want)
    return case


def _input(raw: Any, path: Path, line: int, at: float,
           problems: list[Problem]) -> Input | None:
    if not isinstance(raw, LDict) or ("frame" in raw) == ("event" in raw):
        problems.append(Problem(path, line, "each input has either 'frame' (as the exchange "
                                "sends it) or 'event' (as rules see it)"))
        return None
    unknown_keys(raw, INPUT_KEYS, path, problems, "input")
    if "at" in raw:
        seconds = 0.0 if str(raw["at"]).strip() in ("0", "0s") else duration(raw["at"])
        if seconds is None:
            problems.append(Problem(path, raw.line_of("at"), "at is a time since the start "
                                    "of the test, such as 0s, 3s or 4h"))
            return None
        at = seconds
    exchange = str(raw.get("exchange", "deltadefi"))
    if exchange not in EXCHANGES:
        problems.append(Problem(path, raw.line_of("exchange"), f"exchange is one of "
                                f"{', '.join(EXCHANGES)}"))
        return None
    src = Source(str(raw.get("account", "main")), exchange, str(raw.get("market", "spot")))
    if "frame" in raw:
        frame = raw["frame"]
        return Input(at, line, src, frame=frame if isinstance(frame, str) else to_json(frame))
    event = parse_event(raw["event"], src, path, raw.line_of("event"), problems)
    return None if event is None else Input(at, line, src, event=event)


def parse_event(spec: Any, src: Source, path: Path, line: int,
                problems: list[Problem]) -> Event | None:
    """An event written by hand (`kind` and the kind's fields; numbers exact), as detection
    would have made it; fields left out have no value."""
    if not isinstance(spec, LDict) or spec.get("kind") not in EVENT_KINDS:
        problems.append(Problem(path, line, f"an event is a mapping with 'kind' "
                                f"({', '.join(EVENT_KINDS)}) and the event's fields"))
        return None
    kind = spec["kind"]
    types = fields_of(kind)
    unknown = [k for k in spec if k != "kind" and k not in types]
    if unknown:
        problems.append(Problem(path, spec.line_of(unknown[0]), f"'{kind}' events have no "
                                f"field '{unknown[0]}'; fields are: {', '.join(types)}"))
        return None
    fields: dict[str, Any] = {name: None for name in types}
    fields.update(account=src.account, exchange=src.exchange, market=src.market)
    for name, value in spec.items():
        if name != "kind":
            try:
                fields[name] = _typed(name, value, types[name])
            except ConditionError as exc:
                problems.append(Problem(path, spec.line_of(name), f"'{kind}' event: {exc}"))
                return None
    return Event(kind, _subject(kind, src, fields), fields)


def _typed(name: str, value: Any, kind: FieldType) -> Any:
    """A hand-written value as detection would give it; a number that is none (`"1,860"`,
    `abc`) is the writer's mistake, said as such, never a traceback."""
    if value is None:
        return None
    if kind in (FieldType.NUMBER, FieldType.BOOL):
        return coerce(name, kind, value)
    return str(value)


def _subject(kind: str, src: Source, fields: dict[str, Any]) -> str:
    """What edge-triggering tracks, as detection names it."""
    if kind not in LEVEL_KINDS:
        return f"{src.key}/{kind}/{fields.get('trade_id') or fields.get('order_id') or ''}"
    what = {"balance": "asset", "position": "symbol"}.get(kind)
    return level_subject(src, kind, str(fields.get(what) or "") if what else "")


def _expected(raw: Any, path: Path, line: int, problems: list[Problem]) -> Expected | None:
    if not isinstance(raw, LDict):
        problems.append(Problem(path, line, f"each expected alert is a mapping of "
                                f"{', '.join(EXPECT_KEYS)}"))
        return None
    unknown_keys(raw, EXPECT_KEYS, path, problems)
    want: dict[str, str | re.Pattern[str]] = {}
    for key, value in raw.items():
        if key not in EXPECT_KEYS:
            continue
        key = "notify" if key == "notifier" else key
        if key == "notify" and isinstance(value, list):
            value = ",".join(map(str, value))
        if isinstance(value, LDict) and set(value) == {"matches"}:
            try:
                want[key] = re.compile(str(value["matches"]))
            except re.error as exc:
                problems.append(Problem(path, raw.line_of(key), f"bad regular expression: "
                                        f"{exc}"))
        else:
            want[key] = str(value)
    return Expected(line, want)


def run_case(rules: RuleSet, case: Case) -> list[Sent]:
    """Feed a case's inputs, each at its time, to a fresh core; what the outbox holds after
    the longest group wait."""
    clock = Clock(case.start)
    pipeline = Pipeline(rules, Store(":memory:", clock=clock), clock=clock)
    pipeline.reports()
    for item in case.inputs:
        clock.now = case.start + item.at
        tick(pipeline)
        if item.event is not None:
            item.event.fields["time"] = item.event.fields["time"] or iso(None, clock.now)
            pipeline.event(item.event)
        else:
            pipeline.raw(item.src, item.frame or "")
        tick(pipeline)
    settle(pipeline, clock)
    return sent(pipeline.store)


def tick(pipeline: Pipeline) -> None:
    """What the daemon's timers do (commit and release groups, remind, report), at once: a
    run on a fake clock calls it around every input."""
    pipeline.flush()
    pipeline.remind()
    pipeline.reports()


def settle(pipeline: Pipeline, clock: Clock) -> None:
    """Move the clock past the longest group wait and release what waited."""
    clock.now += max((r.group.wait for r in pipeline.rules.rules), default=0.0) + 1
    pipeline.flush()


def sent(store: Store) -> list[Sent]:
    out: list[Sent] = []
    last: tuple[Any, ...] | None = None
    for created, notifier, rule, title, body, severity in store.db.execute(
            "SELECT created, notifier, rule, title, body, severity FROM outbox ORDER BY id"):
        key = (created, rule, title, body)
        if key == last and notifier not in out[-1].notify:
            prev = out[-1]
            out[-1] = Sent(prev.rule, prev.title, prev.message, (*prev.notify, notifier),
                           severity)
            continue
        last = key
        out.append(Sent(rule, title, body, (notifier,), severity))
    return out


def compare(expected: list[Expected], got: list[Sent]) -> list[str]:
    """The differences, as lines for a person; empty when the case passed."""
    lines: list[str] = []
    for i in range(max(len(expected), len(got))):
        want = expected[i] if i < len(expected) else None
        have = got[i] if i < len(got) else None
        if want is None and have is not None:
            lines.append(f"+ unexpected alert #{i + 1}: {have.describe()}")
            continue
        if have is None and want is not None:
            lines.append(f"- missing alert #{i + 1} (line {want.line}): " + ", ".join(
                f"{k} {_show(v)}" for k, v in want.want.items()))
            continue
        assert want is not None and have is not None
        for key, value in want.want.items():
            actual = {"rule": have.rule, "title": have.title, "message": have.message,
                      "notify": ",".join(have.notify)}[key]
            ok = (value.search(actual) is not None if isinstance(value, re.Pattern)
                  else value == actual)
            if not ok:
                lines.append(f"~ alert #{i + 1} (line {want.line}) {key}:\n"
                             f"      expected {_show(value)}\n"
                             f"      got      {actual!r}")
    return lines


def _show(value: str | re.Pattern[str]) -> str:
    return f"matching /{value.pattern}/" if isinstance(value, re.Pattern) else repr(value)


def main(paths: list[str], out: Any) -> int:
    """Run every case of every file; pytest-like output, exit 1 if any failed or did not
    load."""
    files = test_files(paths)
    if not files:
        print(f"no *.test.yaml files in {', '.join(paths)}", file=out)
        return 1
    passed = failed = 0
    for path in files:
        print(str(path), file=out)
        try:
            rules, cases = load_tests(path)
        except LoadError as exc:
            for problem in exc.problems:
                print(f"  {problem}", file=out)
            failed += 1
            continue
        for case in cases:
            diff = compare(case.expect, run_case(rules, case))
            if diff:
                failed += 1
                print(f"  FAILED  {case.name} ({path}:{case.line})", file=out)
                for line in diff:
                    print("      " + line.replace("\n", "\n      "), file=out)
            else:
                passed += 1
                print(f"  passed  {case.name}", file=out)
    print(f"{passed} passed, {failed} failed", file=out)
    return 1 if failed else 0
