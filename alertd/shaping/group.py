"""Grouping: alerts of one rule that belong together become one message.

A rule's alerts wait up to `group_wait` (2 s by default) in the state file, keyed by the rule
and its `group_by` fields (account and order for fills and orders, the rule alone otherwise),
then leave as one alert: the fills of one order as one fill with the total quantity, average
price and fees, anything else as a list. A group is written in the same transaction as the
frames that fed it and released in the one that queues its message, so a crash inside the
window loses nothing and sends nothing twice. An order that ends releases its group at once:
no more of it can come, so waiting would only make the message late.

A group is the unit that fails alone: one that cannot be summed or combined goes out as the
list of its members, logged, and a stored row that cannot be read is logged and skipped, so
one bad group never holds the others (or itself) in the file for good.
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from alertd.domain.alerts import Alert, highest
from alertd.domain.events import plain_fields, typed_fields
from alertd.domain.observations import EXACT, TERMINAL, AmountError, bounded
from alertd.domain.templates import one_line
from alertd.storage.store import Store, write_failure

log = logging.getLogger("alertd")

DEFAULT_WAIT = 2.0
_DUE = "CASE WHEN due - wait > ? THEN ? ELSE due END"
"""A group's due time, or now if it lies further ahead than its wait: only the wall clock
stepping back (NTP, a restored VM) puts it there, and the group must not wait that out."""
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
    return json.dumps({"kind": alert.kind, "account": alert.account, "severity": alert.severity,
                       "title": alert.title, "body": alert.body, "notify": alert.notify,
                       "fields": plain_fields(alert.fields or {})})


def decode(rule: str, text: str) -> Alert:
    """A stored member; a number field that no longer reads as one stays text, so the member
    can still be listed."""
    data = json.loads(text)
    fields = typed_fields(data["kind"], data["fields"])
    return Alert(rule=rule, kind=data["kind"], account=data["account"],
                 severity=data["severity"], title=data["title"], body=data["body"],
                 notify=tuple(data["notify"]), fields=fields)


AMOUNTS = ("qty", "price", "quote_qty", "fee", "filled_qty")
"""The fields of a fill that are summed or compared, so checked before they are."""


def total_fill(members: Sequence[Mapping[str, Any]]) -> dict[str, Any] | None:
    """The fills of one symbol and side as one fill: quantities and fees summed, the price
    averaged by quantity, progress from the latest. None if they do not add up: mixed, or an
    amount that is not one (a row stored before amounts were bounded). A fill without a price
    (None, or 0: DeltaDeFi's "unknown") or quantity leaves no average price, shown `-`."""
    first, last = members[0], members[-1]
    if any((m.get("symbol"), m.get("side"), m.get("account")) != (
            first.get("symbol"), first.get("side"), first.get("account")) for m in members):
        return None
    try:
        for m in members:
            for name in AMOUNTS:
                value = m.get(name)
                if value is not None and not isinstance(value, Decimal):
                    return None
                if value is not None:
                    bounded(value)
        with localcontext(EXACT):
            return _total(members, last)
    except (ArithmeticError, AmountError):
        return None


def _total(members: Sequence[Mapping[str, Any]], last: Mapping[str, Any]) -> dict[str, Any]:
    qtys = [m.get("qty") for m in members]
    prices = [m.get("price") for m in members]
    qty = None if None in qtys else sum(qtys, Decimal(0))
    price = None
    if qty and all(prices):
        value = sum((q * p for q, p in zip(qtys, prices, strict=True)), Decimal(0))
        places = max(-p.as_tuple().exponent for p in prices)
        price = _plain((value / qty).quantize(Decimal(1).scaleb(-(places + 4))))
    elif qty == 0 and all(prices):
        price = last.get("price")
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
    quotes = [m.get("quote_qty") for m in members]
    roles = {m.get("role") for m in members}
    trades = [str(m.get("trade_id")) for m in members]
    return {**last, "qty": qty, "price": price, "fee": fee, "fee_asset": fee_asset,
            "quote_qty": None if None in quotes else sum(quotes, Decimal(0)),
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
    return listed(members)


def listed(members: Sequence[Alert]) -> Alert:
    """A group as the list of its members' own titles and bodies, one short line each."""
    first = members[0]
    if len(members) == 1:
        return first
    lines = [one_line(str(m.title), str(m.body), LINE) for m in members]
    return Alert(rule=first.rule, kind=first.kind, account=first.account,
                 severity=highest(m.severity for m in members),
                 title=f"{first.title} (+{len(members) - 1} more)", body="\n".join(lines),
                 notify=first.notify)


def combine_contained(members: Sequence[Alert],
                      render: Callable[[Mapping[str, Any]], tuple[str, str]] | None = None,
                      counted: bool = False) -> Alert:
    """`combine`, except that a group it cannot combine (a bug, a stored value it cannot
    read) is logged once with its rule and goes out listed: it never stays behind, nor
    holds back the groups released with it."""
    try:
        return combine(members, render, counted)
    except Exception as exc:
        if write_failure(exc):
            raise
        log.error("rule %s: a group of %d alerts could not be combined (%s: %s); sent as a "
                  "list of them", members[0].rule, len(members), type(exc).__name__,
                  str(exc)[:200], exc_info=True)
        return listed(members)


def ends_group(alert: Alert) -> bool:
    """An alert after which its order can have nothing more to say."""
    fields = alert.fields or {}
    if alert.kind == "fill":
        return bool(fields.get("complete"))
    return alert.kind == "order" and fields.get("status") in TERMINAL


class Groups:
    """Open groups in the state file, with the earliest release time kept in memory: it is
    recomputed from the file after every release, rollback and abandoned transaction, so
    it never says what the file does not (a group rolled back must not keep a due time)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._next: float | None = None
        self._seen = store.clock()
        self.reload()
        store.participants.append(self)

    def began(self) -> None:
        pass

    def before_commit(self) -> None:
        pass

    def released(self) -> None:
        pass

    def committed(self) -> None:
        pass

    def rolled_back(self) -> None:
        self.reload()

    def abandoned(self) -> None:
        try:
            self.reload()
        except sqlite3.Error:  # the file cannot even be read: look again at the next release
            self._next = self.store.clock()

    def reload(self) -> None:
        now = self.store.clock()
        self._next = self.store.db.execute(f"SELECT MIN({_DUE}) FROM groups",
                                           (now, now)).fetchone()[0]

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
        self.store.db.execute("INSERT INTO groups (rule, gkey, due, alert, wait) "
                              "VALUES (?, ?, ?, ?, ?)",
                              (alert.rule, key, due, encode(alert), grouping.wait))
        self._next = due if self._next is None else min(self._next, due)

    def due_in(self) -> float | None:
        """Seconds until a group is due (0: now), None if none is open; the wall clock going
        back is seen here and the due times are read again."""
        now = self.store.clock()
        if now < self._seen:
            self.reload()
        self._seen = now
        if self._next is None:
            return None
        return max(0.0, self._next - now)

    def take_due(self) -> list[list[Alert]]:
        """The members of every group due now, removed; call inside a transaction that
        queues what they become."""
        now = self.store.clock()
        keys = self.store.db.execute(
            f"SELECT rule, gkey FROM groups GROUP BY rule, gkey HAVING MIN({_DUE}) <= ? "
            "ORDER BY MIN(id)", (now, now, now)).fetchall()
        return self._take(keys)

    def take_rule(self, rule: str) -> list[list[Alert]]:
        """Every open group of `rule`, removed, due or not: a notice of that rule that is not
        held (a resolved notice, a reminder) must not overtake the alert it follows."""
        keys = self.store.db.execute("SELECT rule, gkey FROM groups WHERE rule=? "
                                     "GROUP BY rule, gkey ORDER BY MIN(id)", (rule,)).fetchall()
        return self._take(keys) if keys else []

    def _take(self, keys: list[tuple[str, str]]) -> list[list[Alert]]:
        out: list[list[Alert]] = []
        for rule, key in keys:
            rows = self.store.db.execute("SELECT alert FROM groups WHERE rule=? AND gkey=? "
                                         "ORDER BY id", (rule, key)).fetchall()
            self.store.db.execute("DELETE FROM groups WHERE rule=? AND gkey=?", (rule, key))
            members = []
            for (text,) in rows:
                try:
                    members.append(decode(rule, text))
                except Exception as exc:  # nothing to send it with: keeping it would wedge it
                    log.error("rule %s: a grouped alert in the state file cannot be read "
                              "(%s: %s), dropped: %.300s", rule, type(exc).__name__, exc, text)
            if members:
                out.append(members)
        self.reload()
        return out

    def count(self) -> int:
        return int(self.store.db.execute("SELECT COUNT(*) FROM groups").fetchone()[0])
