"""Grouping: alerts of one rule that belong together become one message.

A rule's alerts wait up to `group_wait` (2 s by default) in the state file, keyed by the rule
and its `group_by` fields (account and order for fills and orders, the rule alone otherwise),
then leave as one alert: the fills of one order as one fill with the total quantity, average
price and fees, anything else as a list. A group is written in the same transaction as the
frames that fed it and released in the one that queues its message, so a crash inside the
window loses nothing and sends nothing twice. An order that ends releases its group at once:
no more of it can come, so waiting would only make the message late.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from alertd.domain.alerts import Alert, highest
from alertd.domain.events import EVENT_KINDS, FieldType, fields_of
from alertd.domain.observations import TERMINAL
from alertd.domain.templates import one_line
from alertd.storage.store import Store

DEFAULT_WAIT = 2.0
DEFAULT_BY: dict[str, tuple[str, ...]] = {"fill": ("account", "order_id"),
                                          "order": ("account", "order_id")}
LINE = 200
"""A listed alert's line is cut here, so a long group stays readable in a chat."""


@dataclass(frozen=True, slots=True)
class Grouping:
    """How a rule's alerts are grouped: `wait` 0 sends each alone, at once."""

    by: tuple[str, ...] = ()
    wait: float = DEFAULT_WAIT


def key_of(by: Sequence[str], fields: Mapping[str, Any]) -> str:
    return json.dumps([str(fields.get(name)) for name in by])


def encode(alert: Alert) -> str:
    fields = {k: str(v) if isinstance(v, Decimal) else v for k, v in (alert.fields or {}).items()}
    return json.dumps({"kind": alert.kind, "account": alert.account, "severity": alert.severity,
                       "title": alert.title, "body": alert.body, "notify": alert.notify,
                       "fields": fields})


def decode(rule: str, text: str) -> Alert:
    data = json.loads(text)
    types = fields_of(data["kind"]) if data["kind"] in EVENT_KINDS else {}
    fields = {k: Decimal(v) if types.get(k) is FieldType.NUMBER and v is not None else v
              for k, v in data["fields"].items()}
    return Alert(rule=rule, kind=data["kind"], account=data["account"],
                 severity=data["severity"], title=data["title"], body=data["body"],
                 notify=tuple(data["notify"]), fields=fields)


def total_fill(members: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The fills of one symbol and side as one fill: quantities and fees summed, the price
    averaged by quantity, progress from the latest. None if they do not add up (mixed)."""
    first, last = members[0], members[-1]
    if any((m["symbol"], m["side"], m["account"]) != (first["symbol"], first["side"],
                                                      first["account"]) for m in members):
        return None
    qty = sum((m["qty"] for m in members), Decimal(0))
    value = sum((m["qty"] * m["price"] for m in members), Decimal(0))
    quotes = [m.get("quote_qty") for m in members]
    places = max(-m["price"].as_tuple().exponent for m in members)
    price = _plain((value / qty).quantize(Decimal(1).scaleb(-(places + 4)))) if qty else last[
        "price"]
    fee_assets = {m.get("fee_asset") for m in members if m.get("fee") is not None}
    fees = [m["fee"] for m in members if m.get("fee") is not None]
    if len(fee_assets) <= 1:
        fee: Any = sum(fees, Decimal(0)) if fees else None
        fee_asset = fee_assets.pop() if fee_assets else last.get("fee_asset")
    else:
        by_asset: dict[str, Decimal] = {}
        for m in members:
            if m.get("fee") is not None:
                by_asset[m["fee_asset"]] = by_asset.get(m["fee_asset"], Decimal(0)) + m["fee"]
        fee, fee_asset = " + ".join(f"{v} {k}" for k, v in by_asset.items()), ""
    roles = {m.get("role") for m in members}
    trades = [str(m.get("trade_id")) for m in members]
    return {**last, "qty": qty, "price": price, "fee": fee, "fee_asset": fee_asset,
            "quote_qty": None if None in quotes else sum(quotes, Decimal(0)),  # type: ignore[arg-type]
            "role": roles.pop() if len(roles) == 1 else "+".join(sorted(map(str, roles))),
            "trade_id": ", ".join(trades) if len(trades) <= 5 else f"{trades[0]} … {trades[-1]}",
            "filled_qty": max((m["filled_qty"] for m in members if m.get("filled_qty")
                               is not None), default=last.get("filled_qty")),
            "caught_up": any(m.get("caught_up") for m in members), "fills": len(members)}


def _plain(value: Decimal) -> Decimal:
    """Without trailing zeros, and never in exponent notation."""
    text = format(value.normalize(), "f")
    return Decimal(text)


def combine(members: Sequence[Alert], render: Any = None, counted: bool = False) -> Alert:
    """One alert for a group. `render(fields) -> (title, body)` is the rule's own templates,
    used for fills that add up (their title gets "(N fills)" unless it says `{fills}`
    itself: `counted`); anything else is listed, one short line per alert."""
    first = members[0]
    if len(members) == 1:
        return first
    severity = highest(m.severity for m in members)
    if first.kind == "fill" and render is not None:
        total = total_fill([m.fields or {} for m in members])
        if total is not None:
            title, body = render(total)
            if not counted:
                title = f"{title} ({len(members)} fills)"
            return Alert(rule=first.rule, kind="fill", account=first.account, severity=severity,
                         title=title, body=body, notify=first.notify, fields=total)
    lines = [one_line(m.title, m.body, LINE) for m in members]
    return Alert(rule=first.rule, kind=first.kind, account=first.account, severity=severity,
                 title=f"{first.title} (+{len(members) - 1} more)", body="\n".join(lines),
                 notify=first.notify)


def ends_group(alert: Alert) -> bool:
    """An alert after which its order can have nothing more to say."""
    fields = alert.fields or {}
    if alert.kind == "fill":
        return bool(fields.get("complete"))
    return alert.kind == "order" and fields.get("status") in TERMINAL


class Groups:
    """Open groups in the state file, with the earliest release time kept in memory (it is
    recomputed from the file after every release and rollback, so it is never wrong for
    long: a stale time only means one query that finds nothing due)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._next: float | None = None
        self.reload()

    def reload(self) -> None:
        self._next = self.store.db.execute("SELECT MIN(due) FROM groups").fetchone()[0]

    def hold(self, alert: Alert, grouping: Grouping) -> None:
        """Into its group; call inside the transaction that raised it."""
        now = self.store.clock()
        key = key_of(grouping.by, alert.fields or {})
        row = self.store.db.execute("SELECT MIN(due) FROM groups WHERE rule=? AND gkey=?",
                                    (alert.rule, key)).fetchone()
        due = row[0] if row[0] is not None else now + grouping.wait
        if ends_group(alert) and "order_id" in grouping.by:
            due = now
            self.store.db.execute("UPDATE groups SET due=? WHERE rule=? AND gkey=?",
                                  (due, alert.rule, key))
        self.store.db.execute("INSERT INTO groups (rule, gkey, due, alert) VALUES (?, ?, ?, ?)",
                              (alert.rule, key, due, encode(alert)))
        self._next = due if self._next is None else min(self._next, due)

    def due_in(self) -> float | None:
        """Seconds until a group is due (0: now), None if none is open."""
        if self._next is None:
            return None
        return max(0.0, self._next - self.store.clock())

    def take_due(self) -> list[list[Alert]]:
        """The members of every group due now, removed; call inside a transaction that
        queues what they become."""
        now = self.store.clock()
        keys = self.store.db.execute("SELECT rule, gkey FROM groups GROUP BY rule, gkey "
                                     "HAVING MIN(due) <= ? ORDER BY MIN(id)", (now,)).fetchall()
        out: list[list[Alert]] = []
        for rule, key in keys:
            rows = self.store.db.execute("SELECT alert FROM groups WHERE rule=? AND gkey=? "
                                         "ORDER BY id", (rule, key)).fetchall()
            self.store.db.execute("DELETE FROM groups WHERE rule=? AND gkey=?", (rule, key))
            out.append([decode(rule, text) for (text,) in rows])
        self.reload()
        return out

    def count(self) -> int:
        return int(self.store.db.execute("SELECT COUNT(*) FROM groups").fetchone()[0])
