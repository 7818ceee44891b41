"""What an order announced ahead of its execution records, in money: the quote amount and fee
its derived fills were announced with and not yet paid off by records.

A derived fill is priced at the margin of the order's executed quote, which needs the quote
of everything announced before it; the records in a frame give most of that, the derived
credit still outstanding the rest. When a record pays credit off, the difference between its
own quote and fee and the derived fill's is what the fill log must be corrected by. Stored as
a row of the `levels` table under `{source}/credit/{order_id}`, written in the frame's
transaction (so a rollback forgets it too) and deleted once the credit is paid off; rows of
orders whose records never came are swept after FORGET_AFTER.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal

from alertd.detect.levels import Levels
from alertd.storage.store import FORGET_AFTER, Store


@dataclass(slots=True)
class Pool:
    """The outstanding derived credit of one order: its quote and fee (in `fee_asset`) as
    announced (None: announced without one), and the last derived fill's time and quantity,
    which find its row in the fill log."""

    quote: Decimal | None
    fee: Decimal | None
    fee_asset: str | None = None
    fill_time: str | None = None
    fill_qty: Decimal | None = None


class Credits:
    """The pools of orders with derived credit outstanding, over the store's `levels` table."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.levels = Levels(store)

    @staticmethod
    def _subject(source: str, order_id: str) -> str:
        """A subject no level kind uses, so no rule, report or snapshot sees the row."""
        return f"{source}/credit/{order_id}"

    def get(self, source: str, order_id: str) -> Pool | None:
        """The order's pool; None where none was kept (credit from before pools were)."""
        row = self.levels.get(self._subject(source, order_id))
        if row is None:
            return None
        quote, fee, fill = row
        asset, time, qty = json.loads(fill) if fill else (None, None, None)
        return Pool(None if quote is None else Decimal(quote),
                    None if fee is None else Decimal(fee), asset, time,
                    None if qty is None else Decimal(qty))

    def put(self, source: str, order_id: str, pool: Pool) -> None:
        """Record the pool (call inside the frame's transaction); a sweep of this source's
        pools older than FORGET_AFTER goes with it, so a pool never paid off does not stay."""
        prefix = f"{source}/credit/"
        self.store.db.execute(
            "DELETE FROM levels WHERE subject >= ? AND subject < ? AND updated < ?",
            (prefix, prefix[:-1] + "0", self.store.clock() - FORGET_AFTER))
        fill = json.dumps([pool.fee_asset, pool.fill_time,
                           None if pool.fill_qty is None else str(pool.fill_qty)])
        self.levels.put(self._subject(source, order_id), pool.quote, pool.fee, fill)

    def drop(self, source: str, order_id: str) -> None:
        """The credit is paid off: the pool is no longer needed."""
        self.store.db.execute("DELETE FROM levels WHERE subject=?",
                              (self._subject(source, order_id),))
