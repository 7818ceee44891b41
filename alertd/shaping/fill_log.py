"""The fills of the last 30 days, for scheduled reports: what was traded, when, and its fee.
The shaping stage owns the `fill_log` table; a fill is written in the transaction that
announced it, so a report never counts a fill that was rolled back."""

from __future__ import annotations

from decimal import Decimal

from alertd.domain.observations import EXACT
from alertd.storage.store import Store


def log_fill(store: Store, when: float, fields: dict[str, object]) -> None:
    """Call inside the transaction of the fill's frame."""
    store.db.execute("INSERT INTO fill_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (
        when, fields["account"], fields["symbol"], fields["side"], str(fields["qty"]),
        _text(fields.get("quote_qty")), _text(fields.get("fee")), fields.get("fee_asset")))


def correct_fill(store: Store, when: float, fields: dict[str, object]) -> None:
    """A derived fill's record came with its own quote and fee: add the difference
    (`quote_qty`, `fee`) to the derived fill's row (`when` and `qty` as it was logged), so a
    report sums what was traded without counting a fill twice. A derived fill never logged
    (history) or already forgotten has nothing to correct. Call inside the frame's
    transaction."""
    row = store.db.execute(
        "SELECT rowid, quote, fee, fee_asset FROM fill_log WHERE time=? AND account=? AND "
        "symbol=? AND side=? AND qty=? ORDER BY rowid DESC LIMIT 1",
        (when, fields["account"], fields["symbol"], fields["side"], str(fields["qty"]))
    ).fetchone()
    if row is None:
        return
    rowid, quote, fee, fee_asset = row
    quote = _plus(quote, fields.get("quote_qty"))
    if fields.get("fee"):
        fee, fee_asset = _plus(fee, fields["fee"]), fee_asset or fields.get("fee_asset")
    store.db.execute("UPDATE fill_log SET quote=?, fee=?, fee_asset=? WHERE rowid=?",
                     (quote, fee, fee_asset, rowid))


def _plus(text: str | None, delta: object) -> str | None:
    """A logged amount plus a difference, exactly (an amount not logged counts as 0)."""
    if not isinstance(delta, Decimal) or not delta:
        return text
    return str(EXACT.add(Decimal(text or 0), delta))


def _text(value: object) -> str | None:
    return None if value is None else str(value)


def prune(store: Store, before: float) -> int:
    """Forget fills older than `before` (reports cover at most the state's 30 days)."""
    return store.db.execute("DELETE FROM fill_log WHERE time < ?", (before,)).rowcount
