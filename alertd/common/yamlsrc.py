"""YAML loading that remembers line numbers, so errors can point at the offending key.

It is the one loader of rules, config and rule tests, so it bounds what a file may make it
do (size, nesting, values with aliases expanded, text and number lengths): a hostile or
runaway file is a `file:line: message`, never a MemoryError, a RecursionError or a hang.

Only `true`/`false` are booleans: YAML 1.1 would read the rule key `on:` (and `yes`, `off`)
as booleans, which is never what a rule author means.
"""

from __future__ import annotations

import gc
import re
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import yaml

from alertd.common.errors import LoadError, Problem
from alertd.common.suggest import did_you_mean


class LDict(dict):
    """A mapping from YAML with `line` (its own) and `key_lines` (each key's line, 1-based)."""

    line: int = 0
    key_lines: dict[Any, int]

    def line_of(self, key: Any) -> int:
        return self.key_lines.get(key, self.line)


class LList(list):
    """A sequence from YAML with `line` and `item_lines` (each item's line, 1-based)."""

    line: int = 0
    item_lines: list[int]

    def line_of(self, index: int) -> int:
        return self.item_lines[index] if index < len(self.item_lines) else self.line


MAX_FILE_BYTES = 4 * 1024 * 1024
"""A rules or config file larger than this is refused unread: a hand-written one is a few
kilobytes, and 10,000 rules (the most `alertd.rules.load` takes) fit in half of it."""
MAX_DEPTH = 64
"""Mappings and lists nested deeper than this (a rule is about 6 deep, `any`/`not` add a few)
are refused, before a `[[[[...` a hundred thousand deep can exhaust the stack."""
MAX_VALUES = 500_000
"""Values in one file, counting each use of an alias (`*name`) as the values it stands for,
so a "billion laughs" of nested aliases is refused after counting, before it is built."""
MAX_SCALAR = 16 * 1024
"""Characters in one text value: far above any title, message or regular expression."""
MAX_DIGITS = 40
MAX_EXPONENT = 30
MAX_NUMERAL = 100
"""A number is bounded as a wire amount is (`alertd.domain.observations`, which this stage
cannot import): at most 40 digits, within 1e-30 to 1e+30, written in at most 100 characters."""


class _Refused(yaml.MarkedYAMLError):
    """A value past one of the bounds above, or one its type cannot hold: its message says
    what to change, so it is not called a syntax error."""

    def __init__(self, problem: str, mark: Any) -> None:
        super().__init__(None, None, problem, mark)


if yaml.__with_libyaml__:  # libyaml's scanner and parser: 10,000 rules in well under a second
    _Parser: Any = yaml.cyaml.CParser
else:  # pragma: no cover - PyYAML built without libyaml: the same events, in Python

    class _Parser(yaml.reader.Reader, yaml.scanner.Scanner, yaml.parser.Parser):
        """PyYAML's own scanner and parser, for where libyaml is missing."""

        def __init__(self, stream: str) -> None:
            yaml.reader.Reader.__init__(self, stream)
            yaml.scanner.Scanner.__init__(self)
            yaml.parser.Parser.__init__(self)


_TAG = "tag:yaml.org,2002:"
_STR, _NULL, _BOOL, _INT, _FLOAT, _MERGE, _EQUALS = (_TAG + t for t in (
    "str", "null", "bool", "int", "float", "merge", "value"))
_SEQ, _MAP = yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, \
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG
_ALIAS, _SCALAR, _SEQUENCE = yaml.AliasEvent, yaml.ScalarEvent, yaml.SequenceStartEvent
_ENDS = (yaml.SequenceEndEvent, yaml.MappingEndEvent)
_TAGGED = {_TAG + t for t in ("str", "null", "bool", "binary", "timestamp")}
"""Scalar types SafeConstructor reads when a tag names them (`!!str 017`)."""


class _Loader(_Parser, yaml.constructor.SafeConstructor, yaml.resolver.Resolver):
    """Builds LDicts, LLists and scalars straight from the parser's events, counting as it
    goes (nesting depth; values, with each alias counted as all it stands for), so a
    hostile file is refused at the line where it crosses a bound, before it is built.

    This replaces PyYAML's composer and constructor, whose tree of nodes cost most of the
    time and memory of a 10,000-rule file; SafeConstructor still reads explicitly tagged
    scalars (`!!str`, `!!timestamp`, ...)."""

    def __init__(self, stream: str) -> None:
        _Parser.__init__(self, stream)
        yaml.constructor.SafeConstructor.__init__(self)
        yaml.resolver.Resolver.__init__(self)
        self._depth = 0
        self._values = 0
        self._height = 0
        self._anchors: dict[str, tuple[Any, int, int]] = {}
        """Each anchor's value, how many values it stands for, and how deep it nests."""
        self._building: set[str] = set()
        self._tags: dict[tuple[str, Any], str] = {}

    def get_single_data(self) -> Any:
        """The one document's value (None for an empty file), as PyYAML's loader gives it."""
        self.get_event()  # stream start
        data = None
        if not self.check_event(yaml.StreamEndEvent):
            start = self.get_event()  # document start
            data = self._value(False)
            self.get_event()  # document end
            if not self.check_event(yaml.StreamEndEvent):
                raise yaml.composer.ComposerError(
                    "expected a single document in the stream", start.start_mark,
                    "but found another document", self.get_event().start_mark)
        self.get_event()  # stream end
        return data

    def _value(self, key: bool) -> Any:
        """The next value in the stream (`key`: in a key's place, where `<<` merges)."""
        event = self.get_event()
        kind = event.__class__
        if kind is _ALIAS:
            return self._alias(event)
        anchor = event.anchor
        if anchor is not None and (anchor in self._anchors or anchor in self._building):
            raise yaml.composer.ComposerError(
                None, None, f"found duplicate anchor &{anchor}", event.start_mark)
        before = self._values
        self._values += 1
        if self._values > MAX_VALUES:
            raise _Refused(f"more than {MAX_VALUES} values in one file; split it into several "
                           "files", event.start_mark)
        tag = event.tag
        if kind is _SCALAR:
            value = event.value
            if len(value) > MAX_SCALAR:
                raise _Refused(f"a value longer than {MAX_SCALAR} characters",
                               event.start_mark)
            if tag is None or tag == "!":
                cache = value, event.implicit
                tag = self._tags.get(cache)
                if tag is None:
                    tag = self._tags[cache] = self.resolve(yaml.ScalarNode, value,
                                                           event.implicit)
            if tag in (_STR, _EQUALS):  # a plain `=` is text too
                data: Any = value
            elif key and tag == _MERGE:
                data = _MERGE_KEY
            else:
                data = self._scalar(tag, event)
            self._height = 0
            if anchor is not None:
                self._anchors[anchor] = value if data is _MERGE_KEY else data, 1, 0
            return data
        self._depth += 1
        if self._depth > MAX_DEPTH:
            raise _Refused(f"values nested more than {MAX_DEPTH} deep", event.start_mark)
        sequence = kind is _SEQUENCE
        if tag not in (None, "!", _SEQ if sequence else _MAP):
            raise _Refused(f"the YAML tag {_short(tag)} is not read here; write a plain "
                           f"{'list' if sequence else 'mapping'}", event.start_mark)
        if anchor is not None:
            self._building.add(anchor)
        data = self._list(event) if sequence else self._mapping(event)
        self._depth -= 1
        if anchor is not None:
            self._building.discard(anchor)
            self._anchors[anchor] = data, self._values - before, self._height
        return data

    def _scalar(self, tag: str, event: yaml.ScalarEvent) -> Any:
        """A scalar of a type other than text: an int, an exact Decimal, true/false, null, or
        an explicitly tagged value read by SafeConstructor, refused at its line if it is not
        one (`!!int x`, the date `2026-13-45`)."""
        value = event.value
        if tag == _NULL and event.implicit[0]:
            return None
        if tag == _BOOL and event.implicit[0]:
            return value[0] in "tT"
        if tag == _INT:
            return _int(value, event.start_mark)
        if tag == _FLOAT:
            return _decimal(value, event.start_mark)
        if tag not in _TAGGED:
            raise _Refused(f"the YAML tag {_short(tag)} is not read here; write the value "
                           "plainly", event.start_mark)
        node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)
        try:
            return self.yaml_constructors[tag](self, node)
        except (ValueError, TypeError, KeyError, OverflowError, ArithmeticError) as exc:
            why = "" if isinstance(exc, KeyError) else f": {exc}"
            raise _Refused(f"cannot read {value[:40]!r} as {_short(tag)}{why}",
                           event.start_mark) from None

    def _alias(self, event: yaml.AliasEvent) -> Any:
        """The value an alias names (the same object), counted as all it stands for."""
        name = event.anchor
        if name not in self._anchors:
            raise _Refused(f"alias *{name} is inside the value it names" if name in
                           self._building else f"found undefined alias *{name}",
                           event.start_mark)
        data, size, height = self._anchors[name]
        if self._depth + height > MAX_DEPTH:
            raise _Refused(f"alias *{name} nests values more than {MAX_DEPTH} deep",
                           event.start_mark)
        self._values += size
        if self._values > MAX_VALUES:
            raise _Refused(f"alias *{name} takes this file past {MAX_VALUES} values (each use "
                           "of an alias counts all it stands for); write the values out",
                           event.start_mark)
        self._height = height
        return data

    def _list(self, start: yaml.SequenceStartEvent) -> LList:
        out = LList()
        out.line = start.start_mark.line + 1
        out.item_lines = lines = []
        height, peek, value = 0, self.peek_event, self._value
        while (event := peek()).__class__ not in _ENDS:
            lines.append(event.start_mark.line + 1)
            out.append(value(False))
            if self._height > height:
                height = self._height
        self.get_event()
        self._height = height + 1
        return out

    def _mapping(self, start: yaml.MappingStartEvent) -> LDict:
        """A mapping; `<<: *defaults` (or a list of them) supplies the keys it does not set
        itself, the first mapping listed winning."""
        out = LDict()
        out.line = start.start_mark.line + 1
        out.key_lines = lines = {}
        merged: list[tuple[yaml.Mark, Any]] = []
        height, peek, value = 0, self.peek_event, self._value
        while (event := peek()).__class__ not in _ENDS:
            mark = event.start_mark
            key = value(True)
            if self._height > height:
                height = self._height
            if key is _MERGE_KEY:
                merged.append((peek().start_mark, value(False)))
            elif not isinstance(key, str | int | float | bool) and key is not None:
                raise yaml.constructor.ConstructorError(None, None, "a key must be a plain "
                                                        "value", mark)
            elif key in lines:
                raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}",
                                                        mark)
            else:
                out[key] = value(False)
                lines[key] = mark.line + 1
            if self._height > height:
                height = self._height
        self.get_event()
        self._height = height + 1
        return _merge(out, merged) if merged else out


def _short(tag: str) -> str:
    """A tag as it is written: `!!set`, `!foo`."""
    return tag.replace(_TAG, "!!", 1)


_MERGE_KEY: Any = object()
"""What a `<<` key reads as: not a key, but the mark of a merge."""


def _merge(out: LDict, merged: list[tuple[yaml.Mark, Any]]) -> LDict:
    """`out` after the keys of each `<<` mapping it does not set itself (merged keys first,
    as PyYAML orders them, each with the line it was written on)."""
    sources: list[LDict] = []
    for mark, value in merged:
        for source in value if isinstance(value, LList) else [value]:
            if not isinstance(source, LDict):
                raise _Refused("'<<' merges a mapping (*name) or a list of them", mark)
            sources.append(source)
    result = LDict()
    result.line = out.line
    result.key_lines = {}
    for source in sources:
        for key, item in source.items():
            if key not in out and key not in result:
                result[key] = item
                result.key_lines[key] = source.line_of(key)
    for key, item in out.items():
        result[key] = item
        result.key_lines[key] = out.key_lines[key]
    return result


_YAML11_ONLY = {_BOOL, _INT, _FLOAT}
_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag not in _YAML11_ONLY]
    for ch, resolvers in yaml.resolver.Resolver.yaml_implicit_resolvers.items()
}
_CORE = (  # YAML 1.2's core schema: `0x…` addresses, `23:00` and `yes` stay text
    (_BOOL, "tTfF", r"^(?:true|True|TRUE|false|False|FALSE)$"),
    (_INT, "-+0123456789", r"^[-+]?[0-9]+$"),
    (_FLOAT, "-+.0123456789",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
)
for _tag, _first, _rx in reversed(_CORE):  # tried in this order: int before float
    for _ch in _first:
        _Loader.yaml_implicit_resolvers.setdefault(_ch, []).insert(0, (_tag, re.compile(_rx)))


def _numeral(text: str, mark: Any) -> str:
    text = text.replace("_", "")
    if len(text) > MAX_NUMERAL:
        raise _Refused(_too_big(text), mark)
    return text


def _too_big(text: str) -> str:
    shown = text if len(text) <= 40 else f"{text[:30]}… ({len(text)} characters)"
    return (f"{shown} is not a number of at most {MAX_DIGITS} digits within "
            f"1e-{MAX_EXPONENT} to 1e+{MAX_EXPONENT}")


def _decimal(text: str, mark: Any) -> Decimal | float:
    """A YAML float as the exact Decimal it was written as, so a threshold never passes
    through binary floating point (`.inf` and `.nan` stay floats and are refused later)."""
    text = _numeral(text, mark)
    try:
        value = Decimal(text)
    except InvalidOperation:
        special = text.lower().lstrip("+")  # YAML's .inf, -.inf and .nan
        if special in (".inf", "-.inf", ".nan"):
            return float(special.replace(".", ""))
        raise _Refused(f"cannot read {text!r} as a number", mark) from None
    if not value.is_finite():
        return float(value)
    if len(value.as_tuple().digits) > MAX_DIGITS or not (
            -MAX_EXPONENT <= value.adjusted() <= MAX_EXPONENT):
        raise _Refused(_too_big(text), mark)
    return value


def _int(text: str, mark: Any) -> int:
    """Decimal digits as written: `017` is seventeen, not YAML 1.1's octal fifteen."""
    text = _numeral(text, mark)
    if len(text.lstrip("+-").lstrip("0")) > MAX_DIGITS:
        raise _Refused(_too_big(text), mark)
    try:
        return int(text, 10)
    except ValueError:
        raise _Refused(f"cannot read {text!r} as a whole number", mark) from None


def unknown_keys(item: LDict, allowed: Sequence[str], path: Path | str,
                 problems: list[Problem], what: str = "") -> None:
    """A problem, with the likely meant key, for each key of `item` not in `allowed`:
    `unknown {what} key 'notfy'; did you mean 'notify'?; expected one of: ...`."""
    for key in item:
        if key not in allowed:
            problems.append(Problem(path, item.line_of(key), "unknown "
                                    f"{what + ' ' if what else ''}key '{key}'"
                                    f"{did_you_mean(key, allowed)}; expected one of: "
                                    f"{', '.join(allowed)}"))


@contextmanager
def paused_gc() -> Iterator[None]:
    """No cyclic garbage collection while a file is read: each collection walks every node
    built so far, which made loading 10,000 rules twice as slow; what a load leaves is freed
    (or kept) as before, once collection resumes."""
    was = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was:
            gc.enable()


def load_yaml(path: Path) -> Any:
    """Parse one YAML file within the bounds above; a syntax error, or a file that crosses a
    bound, becomes a `file:line: message` LoadError (never a MemoryError or RecursionError)."""
    try:
        with path.open("rb") as file:
            raw = file.read(MAX_FILE_BYTES + 1)
        if len(raw) > MAX_FILE_BYTES:
            raise LoadError([Problem(path, 1, f"file is larger than {MAX_FILE_BYTES >> 20} MiB; "
                                     "split it into several files")])
        text = raw.decode("utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError([Problem(path, 1, f"cannot read file: {exc}")]) from None
    loader = _Loader(text)
    try:
        with paused_gc():
            return loader.get_single_data()
    except _Refused as exc:
        raise LoadError([Problem(path, exc.problem_mark.line + 1, str(exc.problem))]) from None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = exc.problem or str(exc)
        if exc.context:
            what = f"{exc.context}: {what}"
        raise LoadError([Problem(path, line, f"YAML syntax error: {what}")]) from None
    except yaml.YAMLError as exc:
        raise LoadError([Problem(path, 1, f"YAML error: {exc}")]) from None
    except (RecursionError, MemoryError) as exc:
        raise LoadError([Problem(path, 1, "file is too large or too deeply nested to load "
                                 f"({type(exc).__name__})")]) from None
    finally:
        loader.dispose()
