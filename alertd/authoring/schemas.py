"""JSON Schemas for rule files and the config, for editors (VS Code's YAML extension and
others read the `yaml-language-server` modeline) and `alertd schema rules|config`.

Built from the same tables the loaders check against (kinds, fields, operators, keys), so
they cannot drift apart; a test checks that the copies shipped beside the example rules are
what this module builds. What only the loader can know (notifier and account names from the
config, RE2 syntax, template fields) stays the loader's `file:line` error.
"""

from __future__ import annotations

import json
from typing import Any

from alertd.domain.events import EVENT_KINDS, LEVEL_KINDS, FieldType, fields_of
from alertd.rules.conditions import OPERATORS
from alertd.rules.load import RULE_KEYS, SEVERITIES
from alertd.shaping.reports import REPORT_KEYS, SECTIONS, WEEKDAYS

DRAFT = "https://json-schema.org/draft/2020-12/schema"
DURATION = {"type": ["string", "number"], "pattern": r"^\s*\d+(\.\d+)?\s*[smhd]?\s*$"}
NUMBER = {"type": ["number", "string"], "pattern": r"^\s*-?\d+(\.\d+)?\s*$"}
NAMES = {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"},
                                        "minItems": 1}]}
CLOCK = {"type": "string", "pattern": r"^([01]?\d|2[0-3]):[0-5]\d$"}
QUIET = {"type": "object", "required": ["from", "to"], "additionalProperties": False,
         "properties": {"from": CLOCK, "to": CLOCK, "tz": {"type": "string"}},
         "description": 'Hold alerts below failure from "23:00" to "07:00" in tz (IANA name).'}
RATE = {"type": "string", "pattern": r"^\s*(none|off|\d+\s*/\s*\d*(\.\d+)?\s*(s|sec|second|m|min|"
        r"minute|h|hour|d|day)s?)\s*$", "description": "Messages per time: 20/min, 1/s, none."}


def _value(kind: FieldType) -> dict[str, Any]:
    return {FieldType.NUMBER: NUMBER, FieldType.BOOL: {"type": "boolean"}}.get(
        kind, {"type": ["string", "number"]})


def _condition(kind: FieldType) -> dict[str, Any]:
    """A field's condition: a bare value (equals) or a mapping of operators."""
    value = _value(kind)
    ops: dict[str, Any] = {"eq": value, "ne": value,
                           "in": {"type": "array", "items": value, "minItems": 1},
                           "not_in": {"type": "array", "items": value, "minItems": 1}}
    if kind is FieldType.NUMBER:
        ops.update({op: NUMBER for op in ("lt", "lte", "gt", "gte")})
    if kind is FieldType.STRING:
        ops["matches"] = {"type": "string", "description": "RE2 regular expression, searched"}
    assert set(ops) <= set(OPERATORS)
    return {"oneOf": [value, {"type": "object", "properties": ops, "minProperties": 1,
                              "additionalProperties": False}]}


def _when(kind: str) -> dict[str, Any]:
    ref = {"$ref": f"#/$defs/when_{kind}"}
    props: dict[str, Any] = {name: {"$ref": f"#/$defs/condition_{t.value}"}
                             for name, t in fields_of(kind).items()}
    props["any"] = {"type": "array", "items": ref, "minItems": 1}
    props["not"] = ref
    return {"type": "object", "properties": props, "additionalProperties": False,
            "minProperties": 1}


def rules_schema() -> dict[str, Any]:
    texts = {"type": "object", "additionalProperties": False,
             "properties": {"title": {"type": "string"}, "message": {"type": "string"}}}
    rule: dict[str, Any] = {
        "type": "object", "required": ["name", "on", "notify"], "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "on": {"enum": list(EVENT_KINDS)},
            "accounts": NAMES, "notify": NAMES,
            "when": {"type": "object"}, "rearm": {"type": "object"},
            "resolved": {"oneOf": [{"type": "boolean"}, texts]},
            "repeat": DURATION, "group_wait": DURATION,
            "group_by": {"oneOf": [{"type": "string"}, {"type": "array",
                                                        "items": {"type": "string"}}]},
            "quiet": QUIET, "severity": {"enum": list(SEVERITIES)},
            "title": {"type": "string"}, "message": {"type": "string"},
        },
        "allOf": [{"if": {"properties": {"on": {"const": kind}}, "required": ["on"]},
                   "then": {"properties": {"when": {"$ref": f"#/$defs/when_{kind}"},
                                           "rearm": {"$ref": f"#/$defs/when_{kind}"},
                                           "group_by": {"oneOf": [
                                               {"enum": list(fields_of(kind))},
                                               {"type": "array",
                                                "items": {"enum": list(fields_of(kind))}}]}},
                            **({} if kind in LEVEL_KINDS else {
                                "not": {"anyOf": [{"required": [k]} for k in
                                                  ("rearm", "resolved", "repeat")]}})}}
                  for kind in EVENT_KINDS],
    }
    assert set(rule["properties"]) == set(RULE_KEYS)
    every = {"type": "string", "pattern": r"^\s*(\d+ hours|hour( at \"?:?[0-5]\d\"?)?|(day|"
             + "|".join(WEEKDAYS) + r') at "?([01]?\d|2[0-3]):[0-5]\d"?)\s*$'}
    report = {"type": "object", "required": ["name", "every", "notify"],
              "additionalProperties": False,
              "properties": {"name": {"type": "string", "minLength": 1}, "every": every,
                             "tz": {"type": "string"}, "notify": NAMES,
                             "include": {"type": "array", "items": {"enum": list(SECTIONS)}}}}
    assert set(report["properties"]) == set(REPORT_KEYS)
    return {"$schema": DRAFT, "$id": "https://alertd.dev/schema/rules.json",
            "title": "alertd rule file", "type": "object", "additionalProperties": False,
            "properties": {"rules": {"type": "array", "items": {"$ref": "#/$defs/rule"}},
                           "reports": {"type": "array", "items": {"$ref": "#/$defs/report"}}},
            "$defs": {"rule": rule, "report": report,
                      **{f"when_{kind}": _when(kind) for kind in EVENT_KINDS},
                      **{f"condition_{t.value}": _condition(t) for t in FieldType}}}


def config_schema() -> dict[str, Any]:
    from alertd.config.load import _TOP_KEYS
    from alertd.exchanges import EXCHANGES

    account = {"type": "object", "required": ["name", "exchange"],
               "additionalProperties": False,
               "properties": {
                   "name": {"type": "string", "pattern": r"^[A-Za-z0-9][A-Za-z0-9_.-]*$"},
                   "exchange": {"enum": list(EXCHANGES)},
                   "api_key": {"type": "string"}, "user": {"type": "string"},
                   "url": {"type": "string", "pattern": r"^wss?://[^?]*$"},
                   "rest_url": {"type": "string", "pattern": r"^https?://"},
                   "markets": {"type": "array", "items": {"enum": ["spot", "perps"]}}}}
    urls = {"oneOf": [{"type": "string", "pattern": "://"},
                      {"type": "array", "minItems": 1,
                       "items": {"type": "string", "pattern": "://"}}]}
    notifier = {"oneOf": [urls, {"type": "object", "required": ["urls"],
                                 "additionalProperties": False,
                                 "properties": {"urls": urls, "rate": RATE, "quiet": QUIET}}]}
    seconds = {"type": "number", "exclusiveMinimum": 0}
    schema = {"$schema": DRAFT, "$id": "https://alertd.dev/schema/config.json",
              "title": "alertd config", "type": "object", "required": ["accounts", "notifiers"],
              "additionalProperties": False,
              "properties": {"accounts": {"type": "array", "items": account, "minItems": 1},
                             "notifiers": {"type": "object", "minProperties": 1,
                                           "additionalProperties": notifier},
                             "state": {"type": "string"},
                             "node": {"type": "string", "minLength": 1},
                             "stream_down_after": seconds,
                             "delivery_max_age": seconds,
                             "heartbeat": {"type": "object", "required": ["url"],
                                           "additionalProperties": False,
                                           "properties": {
                                               "url": {"type": "string",
                                                       "pattern": "^https?://"},
                                               "every": {"type": ["string", "number"]}}},
                             "metrics": {"type": ["string", "integer"]}}}
    assert set(schema["properties"]) == set(_TOP_KEYS)  # type: ignore[arg-type]
    return schema


SCHEMAS = {"rules": rules_schema, "config": config_schema}


def text(which: str) -> str:
    return json.dumps(SCHEMAS[which](), indent=2, sort_keys=True) + "\n"
