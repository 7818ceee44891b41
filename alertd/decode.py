"""Raw frame → JSON object → schema-checked frame; anything else is a counted `Drop`.

Numbers are parsed straight to Decimal (never float), so a threshold comparison is exact.
"""

from __future__ import annotations

import json
from decimal import Decimal
from typing import Any

import jsonschema_rs

from alertd.schemas import DELTADEFI, SODEX

MAX_FRAME = 1 << 20


class Drop(Exception):
    """A frame that is not acted on; `reason` is the counter name, `detail` an example."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


_decoder = json.JSONDecoder(parse_float=Decimal)


def decode(raw: bytes | str) -> dict[str, Any]:
    """Parse one frame; raises Drop for oversize, bad UTF-8, bad JSON or a non-object."""
    if len(raw) > MAX_FRAME:
        raise Drop("oversized", f"{len(raw)} bytes")
    if isinstance(raw, bytes | bytearray | memoryview):
        try:
            raw = bytes(raw).decode("utf-8")
        except UnicodeDecodeError as exc:
            raise Drop("not_utf8", str(exc)) from None
    try:
        obj = _decoder.decode(raw)
    except ValueError as exc:
        raise Drop("not_json", str(exc)) from None
    except RecursionError:
        raise Drop("too_deep", "nested deeper than the parser allows") from None
    if not isinstance(obj, dict):
        raise Drop("not_object", type(obj).__name__)
    return obj


class Validators:
    """Schema validators built once; `check` picks the one for the frame or drops it."""

    def __init__(self) -> None:
        self._dd = {k: jsonschema_rs.validator_for(s) for k, s in DELTADEFI.items()}
        self._sx = {k: jsonschema_rs.validator_for(s) for k, s in SODEX.items()}

    def deltadefi(self, frame: dict[str, Any]) -> str:
        """The frame's sub_type, once its shape is known to be right."""
        sub = frame.get("sub_type")
        validator = self._dd.get(sub) if isinstance(sub, str) else None
        if validator is None:
            raise Drop("unknown_type", f"sub_type {sub!r}")
        _check(validator, frame)
        return sub

    def sodex(self, frame: dict[str, Any], market: str) -> str:
        """The frame's channel, once its shape is known to be right."""
        channel = frame.get("channel")
        key = f"{channel}/{market}" if channel in ("accountUpdate", "accountState") else channel
        validator = self._sx.get(key) if isinstance(key, str) else None
        if validator is None:
            raise Drop("unknown_type", f"channel {channel!r}")
        _check(validator, frame)
        return channel


def _check(validator: Any, frame: dict[str, Any]) -> None:
    if validator.is_valid(frame):
        return
    error = next(iter(validator.iter_errors(frame)), None)
    where = "/".join(str(p) for p in getattr(error, "instance_path", ())) or "frame"
    message = getattr(error, "message", "") or str(error).splitlines()[0]
    raise Drop("schema_invalid", f"{where}: {message}"[:300])
