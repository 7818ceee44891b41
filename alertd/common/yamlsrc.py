"""YAML loading that remembers line numbers, so errors can point at the offending key.

Only `true`/`false` are booleans: YAML 1.1 would read the rule key `on:` (and `yes`, `off`)
as booleans, which is never what a rule author means.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
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


class _Loader(yaml.SafeLoader):
    pass


_YAML11_ONLY = {"tag:yaml.org,2002:bool", "tag:yaml.org,2002:int", "tag:yaml.org,2002:float"}
_Loader.yaml_implicit_resolvers = {
    ch: [(tag, rx) for tag, rx in resolvers if tag not in _YAML11_ONLY]
    for ch, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_CORE = (  # YAML 1.2's core schema: `0x…` addresses, `23:00` and `yes` stay text
    ("tag:yaml.org,2002:bool", "tTfF", r"^(?:true|True|TRUE|false|False|FALSE)$"),
    ("tag:yaml.org,2002:int", "-+0123456789", r"^[-+]?[0-9]+$"),
    ("tag:yaml.org,2002:float", "-+.0123456789",
     r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
     r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$"),
)
for _tag, _first, _rx in reversed(_CORE):  # tried in this order: int before float
    for _ch in _first:
        _Loader.yaml_implicit_resolvers.setdefault(_ch, []).insert(0, (_tag, re.compile(_rx)))


def _construct_mapping(loader: _Loader, node: yaml.MappingNode) -> LDict:
    loader.flatten_mapping(node)
    out = LDict()
    out.line = node.start_mark.line + 1
    out.key_lines = {}
    for key_node, value_node in node.value:
        key = loader.construct_object(key_node, deep=True)
        if not isinstance(key, str | int | float | bool) and key is not None:
            raise yaml.constructor.ConstructorError(
                None, None, "a key must be a plain value", key_node.start_mark
            )
        if key in out.key_lines:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r}", key_node.start_mark
            )
        out[key] = loader.construct_object(value_node, deep=True)
        out.key_lines[key] = key_node.start_mark.line + 1
    return out


def _construct_sequence(loader: _Loader, node: yaml.SequenceNode) -> LList:
    out = LList(loader.construct_object(child, deep=True) for child in node.value)
    out.line = node.start_mark.line + 1
    out.item_lines = [child.start_mark.line + 1 for child in node.value]
    return out


def _construct_decimal(loader: _Loader, node: yaml.ScalarNode) -> Decimal | float:
    """A YAML float as the exact Decimal it was written as, so a threshold never passes
    through binary floating point (`.inf` and `.nan` stay floats and are refused later)."""
    text = str(loader.construct_scalar(node)).replace("_", "")
    try:
        value = Decimal(text)
    except InvalidOperation:
        return float(loader.construct_yaml_float(node))
    return value if value.is_finite() else float(value)


def _construct_int(loader: _Loader, node: yaml.ScalarNode) -> int:
    """Decimal digits as written: `017` is seventeen, not YAML 1.1's octal fifteen."""
    return int(str(loader.construct_scalar(node)), 10)


_Loader.add_constructor("tag:yaml.org,2002:float", _construct_decimal)
_Loader.add_constructor("tag:yaml.org,2002:int", _construct_int)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)
_Loader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_SEQUENCE_TAG, _construct_sequence)


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


def load_yaml(path: Path) -> Any:
    """Parse one YAML file; a syntax error becomes a `file:line: message` LoadError."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise LoadError([Problem(path, 1, f"cannot read file: {exc}")]) from None
    try:
        return yaml.load(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 1
        what = exc.problem or str(exc)
        if exc.context:
            what = f"{exc.context}: {what}"
        raise LoadError([Problem(path, line, f"YAML syntax error: {what}")]) from None
    except yaml.YAMLError as exc:
        raise LoadError([Problem(path, 1, f"YAML error: {exc}")]) from None
