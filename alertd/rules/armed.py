"""Edge-triggering's state: which level rules have fired on which subject and not re-armed
since, and when they last said so (reminders are timed from it). The rules stage owns the
`disarmed` table; it is written in the transaction of the frame that fired or re-armed."""

from __future__ import annotations

from alertd.storage.store import Store


class Armed:
    def __init__(self, store: Store) -> None:
        self.store = store

    def is_disarmed(self, rule_key: str, subject: str) -> bool:
        return self.store.db.execute("SELECT 1 FROM disarmed WHERE rule_key=? AND subject=?",
                                     (rule_key, subject)).fetchone() is not None

    def disarm(self, rule_key: str, subject: str) -> None:
        """Fired (or said again): quiet until it re-arms; `since` times the next reminder."""
        self.store.db.execute("INSERT OR REPLACE INTO disarmed VALUES (?, ?, ?)",
                              (rule_key, subject, self.store.clock()))

    def rearm(self, rule_key: str, subject: str) -> None:
        self.store.db.execute("DELETE FROM disarmed WHERE rule_key=? AND subject=?",
                              (rule_key, subject))

    def disarmed_before(self, rule_key: str, before: float) -> list[str]:
        """Subjects a rule has fired on (and not re-armed) whose last word is older than
        `before`: their reminders are due."""
        return [row[0] for row in self.store.db.execute(
            "SELECT subject FROM disarmed WHERE rule_key=? AND since<=?", (rule_key, before))]

    def prune(self, rule_keys: frozenset[str] | None, now: float) -> int:
        """Forget rules that no longer exist, and the rows of `invalid_messages` events (a
        subject each, never re-armed) after a day; call inside a transaction."""
        n = self.store.db.execute(
            "DELETE FROM disarmed WHERE subject LIKE '%/invalid/%' AND since < ?",
            (now - 86400,)).rowcount
        if rule_keys is not None:
            keys = ",".join("?" * len(rule_keys))
            n += self.store.db.execute(f"DELETE FROM disarmed WHERE rule_key NOT IN ({keys})",
                                       tuple(sorted(rule_keys))).rowcount
        return n
