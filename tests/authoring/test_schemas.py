"""The frame schemas are themselves valid, and accept the exchanges' documented examples."""

from __future__ import annotations

import json

import jsonschema
import pytest

from alertd.exchanges import EXCHANGES
from alertd.ingest.decode import Validators, decode

DELTADEFI, SODEX = EXCHANGES["deltadefi"].schemas, EXCHANGES["sodex"].schemas


@pytest.mark.parametrize("name", [*DELTADEFI, *SODEX])
def test_every_schema_is_valid_draft_2020_12(name):
    schema = DELTADEFI.get(name) or SODEX[name]
    jsonschema.Draft202012Validator.check_schema(schema)


DOCUMENTED = [  # verbatim from the exchanges' pages in shared/reference
    ("deltadefi", "order_info", '{"type":"Account","sub_type":"order_info","order":{"id":'
     '"550e8400-e29b-41d4-a716-446655440000","account_id":"550e8400-e29b-41d4-a716-'
     '446655440001","status":"open","symbol":"ADAUSDM","base_qty":"100.00","quote_qty":"93.00",'
     '"side":"buy","price":"0.93","type":"limit","locked_base_qty":"100.00","locked_quote_qty":'
     '"93.00","executed_base_qty":"0","executed_quote_qty":"0","ob_open_order_base_qty":"100.00",'
     '"commission_unit":"lovelace","commission":"0","commission_rate_bp":10,"executed_price":"0",'
     '"created_at":"2024-01-01T00:00:00Z","updated_at":"2024-01-01T00:00:00Z",'
     '"order_execution_records":[]}}'),
    ("deltadefi", "dlta_points", '{"type":"Account","sub_type":"dlta_points","dlta_points":'
     '{"delta":"150","new_total":"15150","season_points":"5150","source_type":"trade",'
     '"source_ref":"550e8400-e29b-41d4-a716-446655440000","league":"gold"}}'),
    ("deltadefi", "balance", '{"type":"Account","sub_type":"balance","balance":[{"asset":'
     '"usdm","asset_unit":"5066154a","free":1153.006812,"locked":0},{"asset":"ada",'
     '"asset_unit":"","free":1383.52097,"locked":0}]}'),
    ("spot", "accountUpdate", '{"channel":"accountUpdate","type":"update","data":{"E":'
     '1766847039189,"h":2211,"B":[{"i":1,"a":"vBTC","t":"10113.00266312","l":"4.57789"},{"i":0,'
     '"a":"vUSDC","t":"999998045.21473685","l":"1948375.89155815"}]}}'),
]


@pytest.mark.parametrize(("where", "expected", "raw"), DOCUMENTED)
def test_the_documented_examples_pass(where, expected, raw):
    v = Validators()
    frame = decode(raw)
    exchange = EXCHANGES["deltadefi" if where == "deltadefi" else "sodex"]
    got = v.check(exchange, frame, where).split("/")[0]
    assert got == expected
    assert json.loads(raw)  # plain JSON too


def test_every_exchange_schema_compiles():
    """Validators are built at their first frame (issue 19), so a schema that cannot be
    compiled must fail here, not on a trader's first frame of that type."""
    import jsonschema_rs

    for exchange in EXCHANGES.values():
        for key, schema in exchange.schemas.items():
            assert jsonschema_rs.validator_for(schema) is not None, key
