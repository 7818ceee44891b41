"""Raw frame → JSON object → schema-checked frame; anything else is a counted `Drop`.

Numbers are parsed straight to Decimal (never float), so a threshold comparison is exact, and
bounded as they are parsed (`observations.MAX_DIGITS`), so `1e999999999` drops its frame as
`amount_out_of_range` instead of becoming a gigabyte when an alert shows it.
"""

from __future__ import annotations

import json
from typing import Any

import jsonschema_rs

from alertd.domain.observations import Drop, parse_amount, parse_constant, parse_whole
from alertd.exchanges import Exchange
from alertd.transport.wsclient import MAX_FRAME

__all__ = ["Drop", "Validators", "decode"]

_decoder = json.JSONDecoder(parse_float=parse_amount, parse_int=parse_whole,
                            parse_constant=parse_constant)


def decode(raw: bytes | str) -> dict[str, Any]:
    """Parse one frame; raises Drop for oversize, bad UTF-8, bad JSON, a number out of bounds
    or a non-object."""
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
    """The exchanges' schema validators, each built at its first frame and kept: an account
    sees a few of the ~30 message types, and building all is ~5 MB and ~50 ms for nothing."""

    def __init__(self) -> None:
        self._by: dict[tuple[str, str], Any] = {}

    def check(self, exchange: Exchange, frame: dict[str, Any], market: str) -> str:
        """The frame's schema key, once its shape is known to be right; else a Drop."""
        key = exchange.schema_key(frame, market)
        validator = self._by.get((exchange.name, key)) if key is not None else None
        if validator is None:
            schema = exchange.schemas.get(key) if key is not None else None
            if schema is None:
                raise Drop("unknown_type", exchange.describe(frame))
            validator = self._by[(exchange.name, key)] = jsonschema_rs.validator_for(schema)
        _check(validator, frame)
        return key


def _check(validator: Any, frame: dict[str, Any]) -> None:
    if validator.is_valid(frame):
        return
    error = next(iter(validator.iter_errors(frame)), None)
    where = "/".join(str(p) for p in getattr(error, "instance_path", ())) or "frame"
    message = getattr(error, "message", "") or str(error).splitlines()[0]
    raise Drop("schema_invalid", f"{where}: {message}"[:300])
