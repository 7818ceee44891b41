"""Frames as the exchanges document them, for tests."""

from __future__ import annotations

import json

from alertd.demo import dd_balance, dd_order, dd_points, sx_balances, sx_order, sx_trade

__all__ = ["dd_balance", "dd_order", "dd_points", "sx", "sx_balances", "sx_order", "sx_trade"]


def sx(channel: str, data, kind: str = "update") -> str:
    return json.dumps({"channel": channel, "type": kind, "data": data})
