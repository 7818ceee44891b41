"""Building blocks for the frame schemas (JSON Schema Draft 2020-12) of every exchange.

They require what normalisation reads and leave unknown extra fields alone, so an exchange
adding a field does not silence alerts, while a changed type or a missing field is caught.
"""

from __future__ import annotations

from typing import Any

DEC = {"anyOf": [{"type": "number"},
                 {"type": "string", "pattern": r"^\s*-?[0-9]+(\.[0-9]+)?([eE][-+]?[0-9]+)?\s*$"}]}
OPT_DEC = {"anyOf": [DEC, {"type": "null"}]}
STR = {"type": "string"}
OPT_STR = {"type": ["string", "null"]}
ID = {"type": ["string", "integer"]}
MS = {"type": "integer", "minimum": 0}


def obj(required: dict[str, Any], optional: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": "object", "required": list(required),
            "properties": {**required, **(optional or {})}}
