"""Compile a rule's `when:` into a predicate over an event's fields, checked at load time.

Numbers compare as exact decimals and strings case-insensitively, so a YAML threshold of
`0.3` means exactly 0.3 and `symbol: adausdm` matches `ADAUSDM`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

import re2

from alertd.common.suggest import did_you_mean
from alertd.domain.events import FieldType

Predicate = Callable[[Mapping[str, Any]], bool]
OPERATORS = ("eq", "ne", "lt", "lte", "gt", "gte", "in", "not_in", "matches")


class ConditionError(ValueError):
    """A condition that cannot work; `line` points at the offending key when known."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


def _line(node: Any, key: Any) -> int | None:
    line_of = getattr(node, "line_of", None)
    return line_of(key) if line_of else None


def compile_when(when: Any, fields: Mapping[str, FieldType]) -> Predicate:
    """Turn a `when:` mapping into a predicate; every clause must hold."""
    if not isinstance(when, Mapping):
        raise ConditionError("a condition must be a mapping of field: value or field: {op: value}",
                             getattr(when, "line", None))
    if not when:
        raise ConditionError("an empty condition; remove it or name a field",
                             getattr(when, "line", None))
    preds: list[Predicate] = []
    for key, spec in when.items():
        line = _line(when, key)
        if key == "any":
            if not isinstance(spec, list) or not spec:
                raise ConditionError("'any' takes a non-empty list of conditions", line)
            alts = [compile_when(alt, fields) for alt in spec]
            preds.append(lambda ev, alts=alts: any(p(ev) for p in alts))
        elif key == "not":
            inner = compile_when(spec, fields)
            preds.append(lambda ev, inner=inner: not inner(ev))
        elif key in fields:
            preds.extend(_compile_field(str(key), fields[key], spec, line))
        else:
            raise ConditionError(
                f"unknown field '{key}' for this event{did_you_mean(key, fields)}; it has: "
                f"{', '.join(sorted(fields))}"
                " (or 'any' / 'not')", line)
    return _all_of(preds)


def _all_of(preds: list[Predicate]) -> Predicate:
    """Chain predicates with `and` (cheaper per event than all() over a generator)."""
    first, *rest = preds
    for nxt in rest:
        first = (lambda a, b: lambda ev: a(ev) and b(ev))(first, nxt)
    return first


def _compile_field(name: str, ftype: FieldType, spec: Any, line: int | None) -> list[Predicate]:
    if not isinstance(spec, Mapping):
        spec = {"eq": spec}
        op_lines: Mapping[str, int | None] = {"eq": line}
    else:
        op_lines = {op: _line(spec, op) or line for op in spec}
        if not spec:
            raise ConditionError(f"'{name}' has an empty operator mapping", line)
    out = []
    ops = list(spec)
    for i, (op, raw) in enumerate(spec.items()):
        if op not in OPERATORS and raw is None and i and str(op).isdigit():
            before = ops[i - 1]
            raise ConditionError(
                f"'{name}': in {{{before}: {spec[before]},...}} the comma ends the number, so "
                "the digits after it read as a second key; write the number without "
                "thousands separators", op_lines[op])
        if op not in OPERATORS:
            raise ConditionError(
                f"unknown operator '{op}' on '{name}'{did_you_mean(op, OPERATORS)}; use one of: "
                f"{', '.join(OPERATORS)}",
                op_lines[op])
        try:
            out.append(_compile_op(name, ftype, op, raw))
        except ConditionError as exc:
            exc.line = exc.line or op_lines[op]
            raise
    return out


def coerce(name: str, ftype: FieldType, raw: Any) -> Any:
    """A rule value in the form it is compared in (Decimal, casefolded str, or bool)."""
    if raw is None:
        return None
    if ftype is FieldType.NUMBER:
        if isinstance(raw, bool):
            raise ConditionError(f"'{name}' is a number; {raw!r} is not")
        try:
            value = Decimal(str(raw).strip())
        except InvalidOperation:
            raise ConditionError(f"'{name}' is a number; {raw!r} is not{_number_hint(raw)}"
                                 ) from None
        if not value.is_finite():
            raise ConditionError(f"'{name}' needs a finite number, not {raw!r}")
        return value
    if ftype is FieldType.BOOL:
        if not isinstance(raw, bool):
            raise ConditionError(f"'{name}' is true or false; {raw!r} is neither")
        return raw
    if isinstance(raw, list | dict):
        raise ConditionError(f"'{name}' is a text field; {raw!r} is not a single value")
    return str(raw).casefold()


def _number_hint(raw: Any) -> str:
    """What is wrong with a number written as text, when it is a common slip."""
    text = str(raw).strip()
    if re.fullmatch(r"-?\d{1,3}([,_ ']\d{3})+(\.\d+)?", text):
        plain = re.sub(r"[,_ ']", "", text)
        return f": write {plain}, without thousands separators"
    if re.fullmatch(r"-?\d+,\d+", text):
        return f": write {text.replace(',', '.')}, with a decimal point"
    match = re.fullmatch(r"[$€£]?\s*(-?\d+(\.\d+)?)\s*([A-Za-z%$€£]+)?", text)
    if match:
        return f": write the number alone, {match[1]}, without a unit or currency"
    return ""


def _regex(name: str, pattern: str) -> Any:
    """RE2, not `re`: matching takes time linear in the text, so no pattern in a rule file
    (`(a+)+$` on a long symbol) can stall the one thread that evaluates every rule."""
    options = re2.Options()
    options.case_sensitive, options.log_errors = False, False
    options.max_mem = 8 << 20
    try:
        return re2.compile(pattern, options)
    except re2.error as exc:
        detail = exc.args[0].decode() if exc.args and isinstance(exc.args[0], bytes) else exc
        raise ConditionError(
            f"bad regular expression {pattern!r} on '{name}': {detail}; alertd matches in "
            "linear time (RE2), so backreferences and lookaround are not available") from None


def _compile_op(name: str, ftype: FieldType, op: str, raw: Any) -> Predicate:
    text = ftype is FieldType.STRING

    def get(ev: Mapping[str, Any]) -> Any:
        value = ev.get(name)
        return value.casefold() if text and isinstance(value, str) else value

    if op in ("in", "not_in"):
        if not isinstance(raw, list) or not raw:
            raise ConditionError(f"'{op}' on '{name}' takes a non-empty list")
        options = frozenset(coerce(name, ftype, item) for item in raw)
        if op == "in":
            return lambda ev: get(ev) in options
        return lambda ev: get(ev) not in options
    if op == "matches":
        if ftype is not FieldType.STRING:
            raise ConditionError(f"'matches' works on text fields; '{name}' is a {ftype.value}")
        rx = _regex(name, str(raw))
        return lambda ev: isinstance(v := ev.get(name), str) and rx.search(v) is not None
    value = coerce(name, ftype, raw)
    if op == "eq":
        return lambda ev: get(ev) == value
    if op == "ne":
        return lambda ev: get(ev) != value
    if ftype is not FieldType.NUMBER:
        raise ConditionError(f"'{op}' compares numbers; '{name}' is a {ftype.value}")
    if value is None:
        raise ConditionError(f"'{op}' on '{name}' needs a number")
    cmp = {
        "lt": lambda a: a < value, "lte": lambda a: a <= value,
        "gt": lambda a: a > value, "gte": lambda a: a >= value,
    }[op]
    return lambda ev: (v := ev.get(name)) is not None and cmp(v)


def why_not(when: Any, fields: Mapping[str, FieldType], event: Mapping[str, Any]) -> str | None:
    """The first clause of a (valid) `when:` the event fails, with both values; None if it
    holds. For `alertd explain`: the same operators as the compiled predicate, one at a time."""
    for key, spec in when.items():
        if key == "any":
            reasons = [why_not(alt, fields, event) for alt in spec]
            if all(reasons):
                return "none of 'any' holds: " + "; ".join(r for r in reasons if r)
        elif key == "not":
            if why_not(spec, fields, event) is None:
                return f"'not' fails: {_plain_spec(spec)} holds"
        else:
            ops = spec if isinstance(spec, Mapping) else {"eq": spec}
            for op, raw in ops.items():
                if not _compile_op(str(key), fields[key], op, raw)(event):
                    return (f"{key} {op} {_plain_spec(raw)}: the event has "
                            f"{_shown(event.get(key))}")
    return None


def _plain_spec(value: Any) -> str:
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {_plain_spec(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_plain_spec(v) for v in value) + "]"
    return str(value)


def _shown(value: Any) -> str:
    return "no value" if value is None else repr(str(value))
