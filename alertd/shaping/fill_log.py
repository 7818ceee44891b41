"""The fills of the last 30 days, for scheduled reports: what was traded, when, and its fee.
The shaping stage owns the `fill_log` table; a fill is written in the transaction that
announced it, so a report never counts a fill that was rolled back."""

from __future__ import annotations

from alertd.storage.store import Store


def log_fill(store: Store, when: float, fields: dict[str, object]) -> None:
    """Call inside the transaction of the fill's frame."""
    store.db.execute("INSERT INTO fill_log VALUES (?, ?, ?, ?, ?, ?, ?, ?)", (
        when, fields["account"], fields["symbol"], fields["side"], str(fields["qty"]),
        _text(fields.get("quote_qty")), _text(fields.get("fee")), fields.get("fee_asset")))


def _text(value: object) -> str | None:
    return None if value is None else str(value)
