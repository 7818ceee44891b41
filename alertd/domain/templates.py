"""Alert templates: `{field}` and `{field:spec}` only, checked when rules load.

No attribute or index access and no conversions, so a rule file can never reach into Python
objects (`{x.__class__}` is a load error, not a leak). Field values come from outside (an
exchange's symbol, a stream's reason), so each is neutralised as it is filled in: controls
escaped, chat mentions broken. The rule author's own text is left as written.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Mapping
from typing import Any

from alertd.common.redact import neutralise

_FORMATTER = string.Formatter()
MISSING = "-"
MAX_WIDTH = 200
"""Widest field and longest precision a template may ask for (`{price:>20.8f}` is plenty)."""
MAX_RENDERED = 16_000
"""Longest text a template may render; more is cut with a marker (a notifier cuts further)."""
_NUMBERS = re.compile(r"\d+")


class TemplateError(ValueError):
    """The template text is not allowed; the message says what to write instead."""


class Template:
    """A parsed template that renders from an event's fields and never raises."""

    __slots__ = ("_parts", "source")

    @property
    def fields(self) -> frozenset[str]:
        """The field names it shows."""
        return frozenset(name for _, name, _ in self._parts if name is not None)

    def __init__(self, source: str, allowed: Iterable[str]) -> None:
        self.source = source
        allowed = set(allowed)
        parts: list[tuple[str, str | None, str]] = []
        try:
            parsed = list(_FORMATTER.parse(source))
        except ValueError as exc:
            raise TemplateError(
                f"bad template {source!r}: {exc}; use {{{{ and }}}} for braces") from None
        for literal, name, spec, conversion in parsed:
            if name is None:
                parts.append((literal, None, ""))
                continue
            if conversion:
                raise TemplateError(f"'!{conversion}' is not allowed in templates; use {{{name}}}")
            if not name.isidentifier():
                raise TemplateError(
                    f"'{{{name}}}' is not allowed: templates take plain field names like "
                    "{symbol} or {price:.4f}, without attribute or index access"
                )
            if name not in allowed:
                raise TemplateError(
                    f"unknown field '{{{name}}}'; this event has: {', '.join(sorted(allowed))}"
                )
            if spec and ("{" in spec):
                raise TemplateError(f"nested fields in the format of {{{name}}} are not allowed")
            if spec and any(int(n) > MAX_WIDTH for n in _NUMBERS.findall(spec)):
                raise TemplateError(f"'{{{name}:{spec}}}' asks for more than {MAX_WIDTH} "
                                    f"characters; use a width and precision up to {MAX_WIDTH}")
            parts.append((literal, name, spec or ""))
        self._parts = tuple(parts)

    def render(self, values: Mapping[str, Any]) -> str:
        """Fill in the fields, each neutralised (`@everyone` from an exchange must ping no one);
        a value the spec does not fit is shown plainly rather than lost."""
        out: list[str] = []
        for literal, name, spec in self._parts:
            out.append(literal)
            if name is None:
                continue
            out.append(neutralise(_format(values.get(name), spec)))
        text = "".join(out)
        if len(text) > MAX_RENDERED:
            return text[:MAX_RENDERED] + " …[cut]"
        return text


def _format(value: Any, spec: str) -> str:
    if value is None:
        return MISSING
    if isinstance(value, bool):
        return "yes" if value else "no"
    try:
        return format(value, spec)
    except (ValueError, TypeError):
        return str(value)


def one_line(title: str, body: str, width: int = 200) -> str:
    """An alert as one short line of a list (a group or a digest), cut at `width`."""
    line = " ".join(f"• {title}: {body}".split())
    return line if len(line) <= width else line[:width - 1] + "…"
