"""Recordings: every input the core takes (stream frames, REST catch-up batches, stream state
changes), one JSON line each with its receive time, for `alertd replay`.

Frames are written as decoded (numbers exactly as received), before any check, so a replay
sees what the daemon saw; frames dropped while decoding (not JSON, too large) are not
recorded. Secrets are removed from every string (values and keys, however deep) before the
line is encoded: every registered secret (API keys, notifier passwords and tokens, even a short
token standing alone in a field) and every SoDEX-style address. Scrubbing the encoded line
instead missed a secret JSON writes escaped (`p\\u00e4ss`). The file rotates by size.
"""

from __future__ import annotations

import json
import os
import re
import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from alertd.common.redact import scrub
from alertd.domain.observations import Source

ADDRESS = re.compile(r"0x[0-9a-fA-F]{40}")
KEEP = 5
"""Rotated files kept: name.1 (newest) to name.5."""


def to_json(value: Any) -> str:
    """JSON text with Decimals written exactly as they are (no float on the way)."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(str(k))}:{to_json(v)}"
                              for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(to_json(v) for v in value) + "]"
    if isinstance(value, Decimal):
        return str(value) if value.is_finite() else json.dumps(str(value))
    return json.dumps(value)


class Recording:
    """Appends inputs to `path`, rotating past `max_bytes`; called on the core thread."""

    def __init__(self, path: Path, max_bytes: int = 100 << 20,
                 clock: Callable[[], float] = time.time) -> None:
        self.path, self.max_bytes, self.clock = path, max_bytes, clock
        path.parent.mkdir(parents=True, exist_ok=True)
        self._file = path.open("a", encoding="utf-8")
        self.lines = 0

    def frame(self, src: Source, frame: dict[str, Any]) -> None:
        self._write({"source": _source(src), "frame": frame})

    def catch_up(self, src: Source, frames: list[dict[str, Any]], since: float,
                 complete: bool = True) -> None:
        self._write({"source": _source(src), "catch_up": frames, "since": since,
                     **({} if complete else {"complete": False})})

    def status(self, src: Source, status: str, reason: str) -> None:
        self._write({"source": _source(src), "status": status, "reason": reason})

    def _write(self, entry: dict[str, Any]) -> None:
        line = to_json({"t": round(self.clock(), 6), **_clean(entry)})
        self._file.write(line + "\n")
        self._file.flush()
        self.lines += 1
        if self._file.tell() > self.max_bytes:
            self._rotate()

    def _rotate(self) -> None:
        self._file.close()
        for n in range(KEEP - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{n}")
            if older.exists():
                os.replace(older, self.path.with_name(f"{self.path.name}.{n + 1}"))
        os.replace(self.path, self.path.with_name(f"{self.path.name}.1"))
        self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        self._file.close()


def _clean(value: Any) -> Any:
    """The value with every string in it scrubbed: the exchange may echo a key or token in any
    field, so no field is trusted by its name."""
    if isinstance(value, str):
        return ADDRESS.sub("0x…redacted", scrub(value, standalone=True))
    if isinstance(value, dict):
        return {_clean(str(k)): _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value


def _source(src: Source) -> dict[str, str]:
    return {"account": src.account, "exchange": src.exchange, "market": src.market}
