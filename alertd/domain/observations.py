"""Exchange-neutral observations (what the account looks like now), and the helpers every
exchange's normaliser uses to make them (`alertd/exchanges/<name>/normalise.py`).

Observations are not yet events: whether something changed is decided by `detect`, which
knows the last state. Every exchange maps its statuses to the one vocabulary of TERMINAL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Context, Decimal
from typing import Any, NoReturn

TERMINAL = frozenset({"filled", "cancelled", "rejected", "expired", "failed",
                      "partially_cancelled", "replaced"})


@dataclass(frozen=True, slots=True)
class Source:
    """Which stream a frame came from: one account on one market."""

    account: str
    exchange: str
    market: str
    catching_up: bool = field(default=False, compare=False)
    """Set while REST catch-up replays what the stream missed: its fills say `caught_up`."""

    @property
    def key(self) -> str:
        return f"{self.account}/{self.market}"


@dataclass(slots=True)
class FillObs:
    trade_id: str
    order_id: str
    symbol: str
    side: str
    price: Decimal | None
    qty: Decimal
    quote_qty: Decimal | None
    fee: Decimal | None
    fee_asset: str | None
    role: str | None
    time: str
    ts: float | None = None
    """The exchange's time as epoch seconds, for ordering (ISO strings do not sort by time)."""


@dataclass(slots=True)
class OrderObs:
    """`fills` is the DeltaDeFi execution-record list (None on SoDEX, whose fills come apart)."""

    order_id: str
    symbol: str
    side: str
    type: str | None
    status: str
    price: Decimal | None
    qty: Decimal | None
    filled_qty: Decimal | None
    avg_price: Decimal | None
    fills: list[FillObs] | None
    time: str
    reason: str | None = None
    """Why the exchange rejected or cancelled it, as it says (SoDEX `r`)."""
    exec_type: str | None = None
    """What this update executed (SoDEX `x`: new, partially_filled, canceled, rejected, ...)."""
    executed_quote: Decimal | None = None
    """The quote amount the order executed so far, where it says (DeltaDeFi
    `executed_quote_qty`): a derived fill is priced at the margin from it."""
    commission: Decimal | None = None
    """The commission charged so far and its asset, where the order says (DeltaDeFi
    `commission`, `commission_unit`): a derived fill's fee is the margin of it."""
    commission_unit: str | None = None


@dataclass(slots=True)
class BalanceObs:
    asset: str
    free: Decimal
    locked: Decimal
    total: Decimal
    time: str


@dataclass(slots=True)
class PointsObs:
    delta: Decimal | None
    total: Decimal
    season_points: Decimal | None
    source_type: str | None
    source_ref: str | None
    league: str
    time: str


@dataclass(slots=True)
class PositionObs:
    symbol: str
    size: Decimal
    entry_price: Decimal | None
    side: str
    margin_mode: str | None
    """`cross`, `isolated`, or None where the frame does not say (detection keeps the last
    one known: a position's missing margin mode is never guessed)."""
    time: str
    hedge: str = "both"
    """SoDEX `ps`: in hedge mode the long and the short leg of a symbol are two positions."""
    liquidation_price: Decimal | None = None
    unrealized_pnl: Decimal | None = None
    leverage: Decimal | None = None


@dataclass(slots=True)
class LiquidationObs:
    """A position (or an account) the exchange liquidated; `event_id` tells one liquidation
    from another, so a frame sent twice is announced once."""

    event_id: str
    symbol: str | None
    side: str | None
    size: Decimal | None
    mark_price: Decimal | None
    liquidation_price: Decimal | None
    margin_mode: str | None
    account_value: Decimal | None
    time: str
    hedge: str = "both"
    ts: float | None = None


@dataclass(slots=True)
class MarginObs:
    """A perps account's margin as the exchange states it: the account value, the margin
    still available to positions, and what is frozen by positions and by open orders."""

    account_value: Decimal
    available_margin: Decimal | None
    position_margin: Decimal | None
    order_margin: Decimal | None
    time: str


@dataclass(slots=True)
class CompleteObs:
    """A snapshot's full list of one kind (`position` or `balance`): what detection knows of
    that kind on the stream and the list leaves out is gone (closed, or zero). `names` are
    the symbols (with their hedge leg) or assets the list holds."""

    kind: str
    names: frozenset[tuple[str, str]]
    time: str


@dataclass(slots=True)
class StreamObs:
    status: str
    reason: str
    time: str


Observation = (FillObs | OrderObs | BalanceObs | PointsObs | PositionObs | StreamObs
               | LiquidationObs | MarginObs | CompleteObs)


class Drop(Exception):
    """A frame that is not acted on; `reason` is the counter name, `detail` an example.
    It lives this low so that a normaliser's amount check drops a frame like the decoder does."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail = reason, detail


MAX_DIGITS = 40
MAX_EXPONENT = 30
"""A wire amount has at most 40 digits and a magnitude (adjusted exponent) within 1e±30. Real
amounts sit well inside (an 18-decimal token's smallest unit is 1e-18, a 1e15 supply counted
in it 33 digits); beyond, a number is hostile or broken, and `1e999999999` is a gigabyte as
text in a `{price:.2f}`."""
MAX_TEXT = 100
"""Longer than any in-bounds numeral (sign, 30 leading zeros, point, 40 digits), so a longer
one is refused before it is parsed."""


EXACT = Context(prec=256)
"""A context in which sums and products of bounded amounts are exact (the default rounds to
28 digits): 40 digits from 1e+30 down to 1e-69, squared, is under 200 digits."""


class AmountError(Drop):
    """An amount outside the bounds: its frame is dropped, counted as `amount_out_of_range`."""

    def __init__(self, text: str) -> None:
        shown = text if len(text) <= 40 else f"{text[:30]}… ({len(text)} characters)"
        super().__init__("amount_out_of_range", f"{shown} is not an amount of at most "
                         f"{MAX_DIGITS} digits within 1e-{MAX_EXPONENT} to 1e+{MAX_EXPONENT}")


def bounded(amount: Decimal, text: str | None = None) -> Decimal:
    """`amount` itself if it is finite and within the bounds, else AmountError (`text`: how
    it was written, for the message)."""
    if amount.is_finite() and len(amount.as_tuple().digits) <= MAX_DIGITS \
            and -MAX_EXPONENT <= amount.adjusted() <= MAX_EXPONENT:
        return amount
    raise AmountError(str(amount) if text is None else text)


def parse_amount(text: str) -> Decimal:
    """A numeral as a bounded, exact Decimal; `parse_float` for any JSON decoder of wire data.
    Raises AmountError (a Drop), never anything slow or big."""
    if len(text) > MAX_TEXT and len(text := text.strip()) > MAX_TEXT:
        raise AmountError(text)
    try:
        amount = Decimal(text)
    except ArithmeticError:  # decimal.InvalidOperation: not a numeral at all
        raise AmountError(text) from None
    if len(text) <= _PLAIN_BOUNDED and amount.is_finite() and "e" not in text \
            and "E" not in text:
        return amount  # fewer digits, and a smaller exponent, than the bounds allow
    return bounded(amount, text)


_PLAIN_BOUNDED = min(MAX_DIGITS, MAX_EXPONENT)
"""A numeral this short without an exponent is within the bounds: checked by its length
alone (most wire amounts), 6x faster than `bounded`."""


def parse_whole(text: str) -> int:
    """A JSON integer of at most MAX_DIGITS digits (ids and times too, so no exponent bound);
    `parse_int` for any JSON decoder of wire data. Raises AmountError."""
    if len(text) > MAX_DIGITS and len(text.lstrip("-")) > MAX_DIGITS:
        raise AmountError(text)
    return int(text)


def parse_constant(name: str) -> NoReturn:
    """`parse_constant` for any JSON decoder of wire data: NaN and Infinity are no amounts
    (the default would put a float in the frame)."""
    raise AmountError(name)


def dec(value: Any) -> Decimal | None:
    """A wire amount as an exact, bounded Decimal (the decoder already made JSON numbers
    Decimal); out of bounds, AmountError drops the frame."""
    if value.__class__ is str:
        return parse_amount(value)
    if value is None:
        return None
    if isinstance(value, Decimal):
        return bounded(value)
    if isinstance(value, str):
        return parse_amount(str(value))
    return bounded(Decimal(value))


def nonzero(value: Any) -> Decimal | None:
    """An order quantity, or None where the exchange sends 0 for "not by base quantity"
    (an order funded by quote amount), so no fill can look complete against 0."""
    amount = dec(value)
    return amount if amount else None


PLAUSIBLE_SINCE = datetime(2020, 1, 1, tzinfo=UTC).timestamp()
FUTURE_SLACK = 86400.0
"""An exchange's stamp is a hint, believed only within [2020-01-01, receive time + 1 day].
Whole numbers are milliseconds (both exchanges' contracts say so), so a stamp in seconds
reads as January 1970, 0 as 1970 itself, and one in microseconds as the year 58000: each is
out of the window and the receive time stands in (a stamp outside it once made a live fill
look older than the 30-day horizon, and it was dropped unsaid)."""


def plausible(seconds: float | None, now: float) -> bool:
    """Whether an exchange time (epoch seconds) can be believed when received at `now`."""
    return seconds is not None and PLAUSIBLE_SINCE <= seconds <= now + FUTURE_SLACK


def epoch(value: Any, now: float | None = None) -> float | None:
    """Exchange time (ms since the epoch, or ISO 8601 text) as epoch seconds, or None. With
    `now` (the receive time), a time missing, unreadable or not `plausible` is `now`."""
    seconds: float | None = None
    if isinstance(value, int) and not isinstance(value, bool):
        seconds = value / 1000
    elif isinstance(value, str) and value:
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            parsed = None
        if parsed is not None:
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            seconds = parsed.timestamp()
    if now is not None and not plausible(seconds, now):
        return now
    return seconds


def iso(ms: int | None, now: float) -> str:
    """An exchange time in ms as ISO 8601 text; the receive time `now` where it is missing or
    not `plausible` (see PLAUSIBLE_SINCE)."""
    seconds = epoch(ms, now) if isinstance(ms, int) else now
    return _text(seconds if seconds is not None else now)


def stamp(value: Any, now: float) -> tuple[str, float]:
    """An exchange time (ms or ISO 8601 text) as (ISO text, epoch seconds): the exchange's
    own where `plausible`, else the receive time `now`, so no stamp can age a frame."""
    seconds = epoch(value)
    if seconds is None or not plausible(seconds, now):
        return _text(now), now
    return (value if isinstance(value, str) else _text(seconds)), seconds


def _text(seconds: float) -> str:
    """Epoch seconds as ISO 8601 UTC text in ms, the form every event's `time` takes."""
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def lower(value: Any) -> str | None:
    """Text lower-cased; anything else (a missing field) None."""
    return value.lower() if isinstance(value, str) else None
