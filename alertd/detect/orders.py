"""Detection's memory of orders and fills: an order's status, quantity and what was announced
of it, and every fill id seen, so a fill is said once however often it is restated.

Order rows are written behind, once per commit, from a bounded cache whose changes are undone
with the savepoint of the frame that made them; the store tells this book of every savepoint,
commit and abandoned transaction (`storage.store.Participant`), so the cache never says what
the file does not.
"""

from __future__ import annotations

from decimal import Decimal

from alertd.common.bloom import Bloom
from alertd.storage.store import FORGET_AFTER, Store

ORDER_CACHE = 2_000
"""Orders and fill ids kept in memory; beyond, they are read back from the file."""
STUCK_AFTER = 90 * 86400.0
"""An order not finished but silent this long is forgotten too (the exchange lost it)."""

OrderState = tuple[str | None, Decimal | None, Decimal, Decimal]
"""(status, order qty, fill qty announced, of which announced ahead of its execution records)."""


class OrderBook:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._orders: dict[tuple[str, str], OrderState] = {}
        self._fills: set[tuple[str, str]] = set()
        self._dirty: dict[tuple[str, str], tuple[object, ...]] = {}
        self._undo: dict[tuple[str, str], tuple[object, object]] = {}
        self._new_fills: list[tuple[str, str]] = []
        self._ever_orders, self._ever_fills = self._known()
        store.participants.append(self)

    def _known(self) -> tuple[Bloom, Bloom]:
        """Every order and fill id in the file, as filters read before it: an id never added
        is certainly not there, so a new one costs no SELECT. Loaded once; from then on only
        this book writes those tables (the core owns the state; a standby makes a new one)."""
        db = self.store.db
        return (Bloom(db.execute("SELECT source, order_id FROM orders")),
                Bloom(db.execute("SELECT source, fill_id FROM fills")))

    def order(self, source: str, order_id: str) -> OrderState | None:
        """(status, order_qty, announced fill qty, credit) of a known order."""
        cached = self._orders.get(key := (source, order_id))
        if cached is not None:
            return cached
        if key not in self._ever_orders:
            return None
        row = self.store.db.execute("SELECT status, order_qty, announced, credit FROM orders "
                                    "WHERE source=? AND order_id=?", (source, order_id)).fetchone()
        if row is None:
            return None
        return (row[0], None if row[1] is None else Decimal(row[1]), Decimal(row[2]),
                Decimal(row[3]))

    def put_order(self, source: str, order_id: str, state: OrderState) -> None:
        """Record an order's state; call inside a transaction (it is written at commit)."""
        key = (source, order_id)
        self._ever_orders.add(key)
        if key not in self._undo:
            self._undo[key] = (self._orders.get(key), self._dirty.get(key))
        status, order_qty, announced, credit = state
        self._orders[key] = state
        self._dirty[key] = (source, order_id, status,
                            None if order_qty is None else str(order_qty), str(announced),
                            self.store.clock(), str(credit))

    def fill_seen(self, source: str, fill_id: str, order_id: str) -> bool:
        """Whether the fill was seen before; records it (with its order) as seen either way."""
        key = (source, fill_id)
        if key in self._fills:
            return True
        self._fills.add(key)
        self._new_fills.append(key)
        self._ever_fills.add(key)
        cur = self.store.db.execute("INSERT OR IGNORE INTO fills VALUES (?, ?, ?, ?)",
                                    (source, fill_id, order_id, self.store.clock()))
        return cur.rowcount == 0

    def seen(self, source: str, fill_ids: list[str]) -> set[str]:
        """Which of the fills were seen before, without marking any: from the cache first,
        the file only for the rest (a DeltaDeFi frame restates every record of its order)."""
        known = {f for f in fill_ids if (source, f) in self._fills}
        rest = [f for f in fill_ids if f not in known and (source, f) in self._ever_fills]
        for i in range(0, len(rest), 500):
            part = rest[i:i + 500]
            known.update(row[0] for row in self.store.db.execute(
                "SELECT fill_id FROM fills WHERE source=? AND fill_id IN "
                f"({','.join('?' * len(part))})", (source, *part)))
        return known

    def prune(self, finished: frozenset[str], now: float) -> int:
        """Forget orders that finished (status in `finished`, or never given one) long ago,
        orders silent for STUCK_AFTER whatever their status, and the fills of orders no
        longer known; call inside a transaction. A live order keeps its fills however old,
        since its next frame restates them all (DeltaDeFi sends every execution record each
        time); fills older than FORGET_AFTER are never news."""
        cutoff = now - FORGET_AFTER
        marks = ",".join("?" * len(finished))
        self.before_commit()
        n = self.store.db.execute(
            f"DELETE FROM orders WHERE updated < ? AND (status IS NULL OR status IN ({marks}))"
            " OR updated < ?", (cutoff, *sorted(finished), now - STUCK_AFTER)).rowcount
        n += self.store.db.execute(
            "DELETE FROM fills WHERE seen < ? AND NOT EXISTS (SELECT 1 FROM orders o "
            "WHERE o.source = fills.source AND o.order_id = fills.order_id)",
            (cutoff,)).rowcount
        self._orders.clear()
        self._fills.clear()
        if n:
            self._ever_orders, self._ever_fills = self._known()
        return n

    # --- told by the store ---------------------------------------------------------------

    def began(self) -> None:
        """A savepoint opens: bound the caches now, between frames, never inside one (a
        savepoint could not undo a trim)."""
        if len(self._orders) >= ORDER_CACHE:
            self.before_commit()
            self._orders.clear()
        if len(self._fills) >= ORDER_CACHE:
            self._fills.clear()
        self._undo, self._new_fills = {}, []

    def released(self) -> None:
        self._undo, self._new_fills = {}, []

    def rolled_back(self) -> None:
        for key, (order, dirty) in self._undo.items():
            for cache, old in ((self._orders, order), (self._dirty, dirty)):
                if old is None:
                    cache.pop(key, None)
                else:
                    cache[key] = old  # type: ignore[assignment]
        self._fills.difference_update(self._new_fills)
        self._undo, self._new_fills = {}, []

    def before_commit(self) -> None:
        """Order rows are written behind, once per commit however often an order changed."""
        if self._dirty:
            self.store.db.executemany(
                "INSERT OR REPLACE INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)",
                self._dirty.values())
            self._dirty.clear()

    def committed(self) -> None:
        pass

    def abandoned(self) -> None:
        self._orders.clear()
        self._fills.clear()
        self._dirty.clear()
        self._undo, self._new_fills = {}, []
