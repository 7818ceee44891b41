"""Observations + remembered state → events: the stage that makes alerts exact.

A fill is announced once however often its frame is re-sent, a status or league only when it
differs from the last one known, and a snapshot only where it shows something new.
"""

from __future__ import annotations

import dataclasses
from collections import OrderedDict
from collections.abc import Callable
from decimal import Context, Decimal

from alertd.detect.credits import Credits, Pool
from alertd.detect.levels import LastLevels, Levels
from alertd.detect.orders import OrderBook
from alertd.domain.events import LEAGUES, Event
from alertd.domain.observations import (
    EXACT,
    BalanceObs,
    CompleteObs,
    FillObs,
    LiquidationObs,
    MarginObs,
    Observation,
    OrderObs,
    PointsObs,
    PositionObs,
    Source,
    StreamObs,
    epoch,
    iso,
    plausible,
)
from alertd.storage.store import FORGET_AFTER, Store

ZERO = Decimal(0)
RATIO = Context(prec=28)
"""Ratios of two amounts rarely end: they are rounded to 28 significant digits (Decimal's
default), which no threshold a rule writes can tell from exact."""
LOOKED_AT = 10_000
"""Level subjects remembered as looked at in this process, the least recently seen leaving
first: one that left and comes back is a first look again, which costs one extra level event
(not a change: its rule's edge state is stored, so nothing fires twice). A set of every
subject ever seen grew with each new asset or symbol, for good."""
CORRECTION = "fill_correction"
"""The kind of event that tells the fill log a derived fill's quote or fee was not what its
record later showed; no rule sees it (the fill was announced once already)."""
POSITION_DETAILS = ("entry_price", "margin_mode", "liquidation_price", "unrealized_pnl",
                    "leverage")
"""A position's figures besides its size and side: when only they move, rules see the new
values (`changed` stays False, so a rule without `when` is not told)."""


def level_subject(src: Source, kind: str, name: str = "") -> str:
    """What edge-triggering tracks a level by: its stream, and the asset or symbol."""
    return f"{src.key}/{kind}" + (f"/{name.lower()}" if name else "")


class Detector:
    """Turns observations into events against the store; call inside a store transaction."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._looked_at: OrderedDict[str, None] = OrderedDict()
        self.book = OrderBook(store)
        self.levels = Levels(store)
        self.last = LastLevels(store)
        """The last level event per subject, for reminders and for rules a reload adds."""
        self.credits = Credits(store)
        self.on_history: Callable[[Source, str], None] | None = None
        """Told of each fill, order change or liquidation not announced because its stamp
        is older than the horizon (the pipeline counts and logs them as `history`)."""

    def observe(self, src: Source, obs: Observation,
                history_until: float | None = None) -> list[Event]:
        """Events in one observation. With `history_until` (an epoch time) it is a first look
        at a stream's history: what happened up to then is recorded, not announced, since it
        happened before alertd watched; a fill stamped later is still news."""
        if isinstance(obs, OrderObs):
            return self._order(src, obs, history_until)
        if isinstance(obs, FillObs):
            return self._trade(src, obs, history_until)
        if isinstance(obs, BalanceObs):
            return self._balance(src, obs)
        if isinstance(obs, PositionObs):
            return self._position(src, obs)
        if isinstance(obs, PointsObs):
            return self._points(src, obs)
        if isinstance(obs, CompleteObs):
            return self._complete(src, obs)
        if isinstance(obs, LiquidationObs):
            return self._liquidation(src, obs, history_until)
        if isinstance(obs, MarginObs):
            return self._margin(src, obs)
        return self._stream(src, obs)

    def _common(self, src: Source, time: str) -> dict[str, object]:
        return {"account": src.account, "exchange": src.exchange, "market": src.market,
                "time": time}

    def _fill_event(self, src: Source, f: FillObs, filled: Decimal, order_qty: Decimal | None,
                    complete: bool) -> Event:
        return Event("fill", f"{src.key}/{f.trade_id}", {
            **self._common(src, f.time), "order_id": f.order_id, "trade_id": f.trade_id,
            "symbol": f.symbol, "side": f.side, "price": f.price, "qty": f.qty,
            "quote_qty": f.quote_qty, "fee": f.fee, "fee_asset": f.fee_asset, "role": f.role,
            "filled_qty": filled, "order_qty": order_qty, "complete": complete,
            "caught_up": src.catching_up, "fills": 1})

    def _order(self, src: Source, o: OrderObs, history_until: float | None) -> list[Event]:
        known = self.book.order(src.key, o.order_id)
        prev_status, _, announced, credit = known or (None, None, ZERO, ZERO)
        events: list[Event] = []
        if o.fills is not None:
            announced, credit, events = self._records(src, o, announced, credit, history_until)
        if o.status != prev_status and history_until is None \
                and not self._stale(src, f"order {o.order_id} {o.status}", None, o.time):
            events.append(Event("order", f"{src.key}/{o.order_id}", {
                **self._common(src, o.time), "order_id": o.order_id, "symbol": o.symbol,
                "side": o.side, "type": o.type, "status": o.status,
                "previous_status": prev_status, "price": o.price, "qty": o.qty,
                "filled_qty": o.filled_qty, "reason": o.reason, "exec_type": o.exec_type}))
        state = (o.status, o.qty, announced, credit)
        if known != state:  # a re-sent frame writes nothing
            self.book.put_order(src.key, o.order_id, state)
        return events

    def _records(self, src: Source, o: OrderObs, announced: Decimal, credit: Decimal,
                 history_until: float | None) -> tuple[Decimal, Decimal, list[Event]]:
        """DeltaDeFi fills: one per new execution record (by its `id`, the same on the stream
        and over REST), sized exactly.

        When `executed_base_qty` runs ahead of the records, the difference is announced at
        once as a derived fill, priced at the margin of the order's executed quote, and kept
        as credit; the records that arrive later pay that credit off first (the fill log is
        corrected by what their quote and fee differ) and are announced only for what the
        derived fill did not cover, so the fills announced add up to what the order executed.
        A record under an id not seen is news only as far as the order executed more than
        was announced (`executed_base_qty` − announced, plus the credit owed), so the fills
        announced never pass `executed_base_qty`. Where the new ids add up to more, the
        oldest of them, up to what was announced by records missing from the frame under
        their own ids, restate those fills under another id (a REST listing); a record
        still beyond is ahead of `executed_base_qty` and waits for the frame that catches
        up. Neither is marked seen.
        """
        ids: set[str] = set()
        records = [f for f in sorted(o.fills or [], key=lambda f: (f.ts or 0.0, f.trade_id))
                   if not (f.trade_id in ids or ids.add(f.trade_id))]  # oldest first, once
        cap = o.filled_qty or None  # 0 beside records states nothing (an older shape)
        pool = self.credits.get(src.key, o.order_id) if credit > 0 else None
        had_pool, moved = pool is not None, False
        known = self.book.seen(src.key, [f.trade_id for f in records])
        counted = [f for f in records if f.trade_id in known]
        """The records behind what is announced: with the credit, they add up to it."""
        news = [f for f in records if f.trade_id not in known]
        room = None if cap is None else cap - announced + credit
        if room is not None and sum((f.qty for f in news), ZERO) > room:
            restated = announced - credit - sum((f.qty for f in counted), ZERO)
            fresh: list[FillObs] = []
            for f in news:
                if f.qty <= restated:
                    restated -= f.qty
                elif f.qty <= room:
                    fresh.append(f)
                    room -= f.qty
                else:
                    break
            news = fresh
        out: list[tuple[FillObs, Decimal]] = []
        events: list[Event] = []
        for f in news:
            if self.book.fill_seen(src.key, f.trade_id, o.order_id):
                continue
            counted.append(f)
            covered = min(credit, f.qty)
            if covered:
                events += self._pay_off(src, f, covered, credit, pool)
                credit -= covered
                moved = True
            if f.qty > covered:
                out.append((_part(f, f.qty - covered), announced + f.qty - covered))
                announced += f.qty - covered
        executed = cap if cap is not None else sum((f.qty for f in records), ZERO)
        if executed > announced:
            qty = executed - announced
            price, quote, fee, fee_asset = _margin(o, qty, announced, counted, credit, pool)
            derived = FillObs(
                trade_id=f"{o.order_id}@{executed}", order_id=o.order_id, symbol=o.symbol,
                side=o.side, price=price, qty=qty, quote_qty=quote, fee=fee,
                fee_asset=fee_asset, role=None, time=o.time)
            if not self.book.fill_seen(src.key, derived.trade_id, o.order_id):
                out.append((derived, executed))
            if credit == 0:
                pool = Pool(quote, fee, fee_asset)
            elif pool is not None:
                pool.quote = _plus(pool.quote, quote)
                pool.fee = _plus(pool.fee, fee)
            if pool is not None:
                pool.fill_time, pool.fill_qty = derived.time, qty
            credit += qty
            announced = executed
            moved = True
        if credit > 0 and pool is not None and moved:
            self.credits.put(src.key, o.order_id, pool)
        elif had_pool and credit == 0:
            self.credits.drop(src.key, o.order_id)
        done = o.status == "filled"
        return announced, credit, events + [
            self._fill_event(src, f, filled, o.qty,
                             (o.qty is not None and filled >= o.qty)
                             or (done and filled >= executed))
            for f, filled in out if not self._history(src, f, history_until)]

    def _pay_off(self, src: Source, f: FillObs, covered: Decimal, credit: Decimal,
                 pool: Pool | None) -> list[Event]:
        """`covered` of record `f` pays derived credit off: the pool gives up its share, and
        the fill log is told what the record's quote and fee differ from the derived
        fill's (nothing is announced again). Without a pool (credit from an older alertd)
        there is nothing to compare with."""
        if pool is None:
            return []
        derived_quote = _share(pool.quote, covered, credit)
        derived_fee = _share(pool.fee, covered, credit)
        pool.quote = None if pool.quote is None else EXACT.subtract(pool.quote, derived_quote)
        pool.fee = None if pool.fee is None else EXACT.subtract(pool.fee, derived_fee)
        own_quote, own_fee = _share(_quote(f), covered, f.qty), _share(f.fee, covered, f.qty)
        if derived_fee and (f.fee_asset or "").lower() != (pool.fee_asset or "").lower():
            own_fee = None  # fees in two assets do not subtract: the derived one stands
        quote = ZERO if own_quote is None else EXACT.subtract(own_quote, derived_quote or ZERO)
        fee = ZERO if own_fee is None else EXACT.subtract(own_fee, derived_fee or ZERO)
        if (quote == 0 and fee == 0) or pool.fill_time is None:
            return []
        return [Event(CORRECTION, f"{src.key}/{f.trade_id}/correction", {
            **self._common(src, pool.fill_time), "order_id": f.order_id,
            "trade_id": f.trade_id, "symbol": f.symbol, "side": f.side, "qty": pool.fill_qty,
            "quote_qty": quote, "fee": fee, "fee_asset": f.fee_asset})]

    def _trade(self, src: Source, f: FillObs, history_until: float | None) -> list[Event]:
        """SoDEX accountTrade: the fill itself; progress comes from the order's fills so far.
        Its id, symbol and trade id, is the same on the stream (`s`, `t`) and over REST
        (`symbol`, `tradeID`; contracts/sodex/ws-accountTrade.json, get-accounts-trades.json)."""
        if self.book.fill_seen(src.key, f.trade_id, f.order_id):
            return []
        status, order_qty, announced, credit = self.book.order(src.key, f.order_id) or (
            None, None, ZERO, ZERO)
        announced += f.qty
        self.book.put_order(src.key, f.order_id, (status, order_qty, announced, credit))
        if self._history(src, f, history_until):
            return []
        complete = order_qty is not None and announced >= order_qty
        return [self._fill_event(src, f, announced, order_qty, complete)]

    def _history(self, src: Source, f: FillObs, history_until: float | None) -> bool:
        """A fill up to `history_until` (a first look: not counted, it is the baseline), or
        one stamped older than housekeeping keeps fills (its order may have been forgotten,
        so the exchange restating it must not make it news again; counted)."""
        if history_until is not None:
            stamped = _stamped(f.ts, f.time, self.store.clock())
            return stamped is None or stamped <= history_until
        return self._stale(src, f"fill {f.trade_id} of order {f.order_id}", f.ts, f.time)

    def _stale(self, src: Source, what: str, ts: float | None, time: str) -> bool:
        """Stamped, plausibly, before the 30-day horizon: not news. Told to `on_history`, so
        it is counted and logged, never dropped unsaid; an implausible stamp is no age."""
        now = self.store.clock()
        stamped = _stamped(ts, time, now)
        if stamped is None or stamped >= now - FORGET_AFTER:
            return False
        if self.on_history is not None:
            self.on_history(src, f"{what} stamped {iso(int(stamped * 1000), now)}, over "
                            f"{FORGET_AFTER / 86400:.0f} days before it came: recorded as "
                            "seen, not announced")
        return True

    def _first_look(self, subject: str) -> bool:
        """True the first time a level subject is seen in this process (after a restart too),
        or again after LOOKED_AT others were seen since it."""
        if subject in self._looked_at:
            self._looked_at.move_to_end(subject)
            return False
        self._looked_at[subject] = None
        if len(self._looked_at) > LOOKED_AT:
            self._looked_at.popitem(last=False)
        return True

    def _balance(self, src: Source, b: BalanceObs) -> list[Event]:
        subject = level_subject(src, "balance", b.asset)
        prev = self.levels.get(subject)
        prev_free = Decimal(prev[0]) if prev and prev[0] is not None else None
        prev_total = Decimal(prev[1]) if prev and prev[1] is not None else None
        changed = prev is None or (prev_free, prev_total) != (b.free, b.total)
        if not self._first_look(subject) and not changed:
            return []
        if changed:
            self.levels.put(subject, b.free, b.total, b.locked)
        return [self._level(Event("balance", subject, {
            **self._common(src, b.time), "asset": b.asset, "free": b.free, "locked": b.locked,
            "total": b.total, "previous_free": prev_free, "previous_total": prev_total},
            changed=changed))]

    def _level(self, event: Event) -> Event:
        self.last.put(event)
        return event

    def _position(self, src: Source, p: PositionObs, subject: str | None = None) -> list[Event]:
        """A position's size or side changed, or only its other figures moved (then the event
        is not a change). A figure or margin mode the frame does not state is the last one
        known, so a source that lacks it (REST) does not make a rule on it flap."""
        subject = subject or position_subject(src, p.symbol, p.hedge)
        prev = self.levels.get(subject)
        prev_size = Decimal(prev[0]) if prev and prev[0] is not None else None
        last = self.last.get(subject)
        known = last.fields if last is not None else {}
        mode = p.margin_mode or known.get("margin_mode")
        stated = {"entry_price": p.entry_price, "liquidation_price": p.liquidation_price,
                  "unrealized_pnl": p.unrealized_pnl, "leverage": p.leverage}
        details: dict[str, object] = {"margin_mode": mode}
        for name, value in stated.items():  # left out while open: the last one said stands
            details[name] = known.get(name) if value is None and p.size != 0 else value
        changed = prev is None or prev_size != p.size or prev[2] != p.side or (
            known.get("margin_mode") is not None and mode != known.get("margin_mode"))
        moved = last is not None and any(known.get(k) != details[k] for k in POSITION_DETAILS)
        if not self._first_look(subject) and not changed and not moved:
            return []
        if changed:
            self.levels.put(subject, p.size, details["entry_price"], p.side)
        return [self._level(Event("position", subject, {
            **self._common(src, p.time), "symbol": p.symbol, "size": p.size,
            "previous_size": prev_size, "side": p.side, **details,
            "caught_up": src.catching_up}, changed=changed))]

    def _complete(self, src: Source, c: CompleteObs) -> list[Event]:
        """A snapshot listed every position (or balance): one known here and not listed is
        closed (flat, size 0) or zero, said once; one already closed or zero stays quiet."""
        prefix = f"{src.key}/{c.kind}/"
        if c.kind == "position":
            listed = {position_subject(src, symbol, hedge) for symbol, hedge in c.names}
        else:
            listed = {level_subject(src, "balance", asset) for asset, _ in c.names}
        rows = self.store.db.execute(
            "SELECT subject, a, b, c FROM levels WHERE substr(subject, 1, ?) = ?",
            (len(prefix), prefix)).fetchall()
        events: list[Event] = []
        for subject, a, b, third in rows:
            if subject in listed:
                continue
            last = self.last.get(subject)
            name = str(last.fields.get("symbol" if c.kind == "position" else "asset")) \
                if last is not None else subject[len(prefix):].split("/")[0]
            if c.kind == "position" and (third != "flat" or _nonzero(a)):
                events += self._position(
                    src, PositionObs(name, ZERO, None, "flat", None, c.time), subject)
            elif c.kind == "balance" and (_nonzero(a) or _nonzero(b)):
                events += self._balance(src, BalanceObs(name, ZERO, ZERO, ZERO, c.time))
        return events

    def _liquidation(self, src: Source, q: LiquidationObs,
                     history_until: float | None) -> list[Event]:
        """Once per liquidation, however often its frame comes (remembered with the fills
        seen, 30 days); one before alertd watched, or older than that, is not news."""
        key = f"liquidation:{q.event_id}"
        if self.book.fill_seen(src.key, key, key):
            return []
        if history_until is not None and (q.ts is None or q.ts <= history_until):
            return []
        if self._stale(src, f"liquidation {q.event_id}", q.ts, q.time):
            return []
        return [Event("liquidation", f"{src.key}/liquidation/{q.event_id}", {
            **self._common(src, q.time), "symbol": q.symbol, "side": q.side, "size": q.size,
            "mark_price": q.mark_price, "liquidation_price": q.liquidation_price,
            "margin_mode": q.margin_mode, "account_value": q.account_value})]

    def _margin(self, src: Source, m: MarginObs) -> list[Event]:
        """A perps account's margin: `margin_ratio` is (account value - available margin) /
        account value, the share of the cross account value already in use (the SDKs
        publish no maintenance margin, `contracts/sodex/ws-accountState.json`); none while
        the account value is not positive."""
        subject = level_subject(src, "margin")
        value, available = m.account_value, m.available_margin
        used = None if available is None else value - available
        ratio = RATIO.divide(used, value) if used is not None and value > 0 else None
        prev = self.levels.get(subject)
        prev_ratio = Decimal(prev[0]) if prev and prev[0] is not None else None
        changed = prev is None or (prev_ratio, prev[1], prev[2]) != (
            ratio, str(value), None if available is None else str(available))
        if not self._first_look(subject) and not changed:
            return []
        if changed:
            self.levels.put(subject, ratio, value, available)
        return [self._level(Event("margin", subject, {
            **self._common(src, m.time), "account_value": value, "available_margin": available,
            "used_margin": used, "margin_ratio": ratio, "previous_margin_ratio": prev_ratio,
            "position_margin": m.position_margin, "order_margin": m.order_margin},
            changed=changed))]

    def _points(self, src: Source, p: PointsObs) -> list[Event]:
        subject = f"{src.account}/points"
        prev = self.levels.get(subject)
        prev_total = Decimal(prev[0]) if prev and prev[0] is not None else None
        prev_league = prev[1] if prev else None
        if prev_total == p.total and prev_league == p.league:
            return []
        self.levels.put(subject, p.total, p.league)
        common = self._common(src, p.time)
        events = [Event("points", subject, {
            **common, "delta": p.delta, "total": p.total, "season_points": p.season_points,
            "source_type": p.source_type, "source_ref": p.source_ref, "league": p.league})]
        if prev_league is not None and prev_league != p.league:
            events.append(Event("league", f"{src.account}/league", {
                **common, "league": p.league, "previous": prev_league,
                "direction": _direction(prev_league, p.league), "total": p.total,
                "season_points": p.season_points}))
        return events

    def _stream(self, src: Source, s: StreamObs) -> list[Event]:
        if s.status == "invalid_messages":  # rate-limited upstream; each one is news
            return [Event("stream", f"{src.key}/invalid/{s.time}", {
                **self._common(src, s.time), "status": s.status, "reason": s.reason})]
        subject = level_subject(src, "stream")
        prev = self.levels.get(subject)
        prev_status = prev[0] if prev else None
        if prev_status == s.status:
            return []
        self.levels.put(subject, s.status, s.reason)
        event = self._level(Event("stream", subject, {
            **self._common(src, s.time), "status": s.status, "reason": s.reason}))
        return [] if prev_status is None and s.status == "connected" else [event]


def position_subject(src: Source, symbol: str, hedge: str) -> str:
    """A position's subject; in hedge mode the long and the short leg are two."""
    subject = level_subject(src, "position", symbol)
    return subject + f"/{hedge}" if hedge in ("long", "short") else subject


def _nonzero(text: str | None) -> bool:
    """A stored amount that is there and not zero."""
    try:
        return text is not None and Decimal(text) != 0
    except ArithmeticError:
        return True


def _stamped(ts: float | None, time: str, now: float) -> float | None:
    """When it happened by its stamps (the epoch one first), where one is plausible."""
    for seconds in (ts, epoch(time)):
        if plausible(seconds, now):
            return seconds
    return None


def _quote(f: FillObs) -> Decimal | None:
    """A record's quote amount, as stated or from its price."""
    if f.quote_qty is not None:
        return f.quote_qty
    return None if f.price is None else EXACT.multiply(f.price, f.qty)


def _share(value: Decimal | None, part: Decimal, whole: Decimal) -> Decimal | None:
    """`part` of `whole`'s `value`, exact when it is all of it."""
    if value is None or part == whole:
        return value
    return RATIO.divide(EXACT.multiply(value, part), whole)


def _plus(a: Decimal | None, b: Decimal | None) -> Decimal | None:
    """An exact sum of two amounts that may be unknown: unknown if either is."""
    return None if a is None or b is None else EXACT.add(a, b)


def _total(values: list[Decimal | None]) -> Decimal | None:
    """The exact sum, or None if one is unknown."""
    total = ZERO
    for value in values:
        if value is None:
            return None
        total = EXACT.add(total, value)
    return total


def _margin(o: OrderObs, qty: Decimal, announced: Decimal, counted: list[FillObs],
            credit: Decimal, pool: Pool | None
            ) -> tuple[Decimal | None, Decimal | None, Decimal | None, str | None]:
    """A derived fill's (price, quote, fee, fee asset): what the order's executed quote and
    commission grew by since what was announced (its records, and the credit still owed),
    where the order states them and they add up; else at the order's average price and
    without a fee, as the cumulative figures cannot tell the new quantity's apart."""
    avg = o.avg_price
    price, quote = avg, None if avg is None else EXACT.multiply(avg, qty)
    owed = pool if credit > 0 else Pool(ZERO, ZERO)
    if owed is None or _plus(_total([f.qty for f in counted]), credit) != announced:
        return price, quote, None, None  # the frame does not show all that was announced
    executed = o.executed_quote
    if executed is None and avg is not None and o.filled_qty:
        executed = EXACT.multiply(avg, o.filled_qty)
    before = _plus(_total([_quote(f) for f in counted]), owed.quote)
    if executed is not None and before is not None and executed > before:
        quote = EXACT.subtract(executed, before)
        price = RATIO.divide(quote, qty)
    fee, unit = None, o.commission_unit
    paid = _plus(_total([f.fee for f in counted]), owed.fee)
    units = {(f.fee_asset or "").lower() for f in counted if f.fee}
    if o.commission is not None and paid is not None and units <= {(unit or "").lower()} \
            and o.commission >= paid:
        fee = EXACT.subtract(o.commission, paid)
    return price, quote, fee, unit if fee is not None else None


def _part(f: FillObs, qty: Decimal) -> FillObs:
    """The part of a fill not yet announced, its quote amount and fee in proportion."""
    if qty == f.qty:
        return f
    ratio = qty / f.qty
    return dataclasses.replace(
        f, qty=qty, quote_qty=None if f.quote_qty is None else f.quote_qty * ratio,
        fee=None if f.fee is None else f.fee * ratio)


def _direction(previous: str, league: str) -> str:
    rank = {name: i for i, name in enumerate(LEAGUES)}
    if previous in rank and league in rank:
        return "up" if rank[league] > rank[previous] else "down"
    return "changed"
