"""Catch-ups to one REST host take turns: the line in front of the pacer.

Taking its calls one by one from the pacer (`http.Pacer`), every catch-up of 200 accounts got
part-way, was refused, and none finished; in a line, a few run at a time and each finishes.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from dataclasses import dataclass

from alertd.transport.http import PACER, Pacer

AT_ONCE = 4
"""Catch-ups to one host that run at a time; the others wait in line. Four keep the 10/s pace
busy over a real round trip (each catch-up makes one call at a time), and none of their calls
waits more than 0.4 s for its slot, so none is refused and each ends well inside its budget."""
FRESH = 3.0
"""A waiting stream asks for its turn at least every tick (1 s); one that has not asked for
this long (backing off, paused) is passed over, keeping its place, so that it does not hold
up the line behind it."""


@dataclass(eq=False)
class Ticket:
    """One stream's place in its host's line: `urgent` for a catch-up after a gap or a failed
    one, else a routine reconciliation; `running` once its turn came."""

    host: str
    key: str
    urgent: bool
    seq: int
    polled: float
    running: bool = False

    def rank(self) -> tuple[bool, int]:
        return not self.urgent, self.seq


class Line:
    """REST catch-ups to one host take turns, first asked first served: at most `at_once` run
    together, a catch-up after a gap before any routine reconciliation, none while the host
    holds us back. Taking calls one by one from the pacer, every catch-up of 200 accounts got
    part-way, was refused and none finished; a stream holds one place at most (asking again
    keeps it, made urgent if the new ask is), so the line is never longer than the streams."""

    def __init__(self, pacer: Pacer = PACER, at_once: int = AT_ONCE) -> None:
        self.pacer, self.at_once = pacer, at_once
        self._cond = threading.Condition()
        self._mine: dict[tuple[str, str], Ticket] = {}
        self._waiting: dict[str, list[Ticket]] = {}
        self._running: dict[str, int] = {}
        self._seq = itertools.count()

    def ask(self, host: str, key: str, urgent: bool) -> Ticket:
        """`key`'s place in `host`'s line: the one it holds (made urgent if this ask is), or
        a new one at the back of its class."""
        with self._cond:
            now = self.pacer.clock()
            ticket = self._mine.get((host, key))
            if ticket is None:
                ticket = Ticket(host, key, urgent, next(self._seq), now)
                self._mine[(host, key)] = ticket
                bisect.insort(self._waiting.setdefault(host, []), ticket, key=Ticket.rank)
            elif urgent and not ticket.urgent:
                if not ticket.running:
                    self._waiting[host].remove(ticket)
                ticket.urgent = True  # keeps its seq: it asked before those asking now
                if not ticket.running:
                    bisect.insort(self._waiting[host], ticket, key=Ticket.rank)
            return ticket

    def begin(self, ticket: Ticket) -> bool:
        """True if the ticket's turn has come (it runs from now until `end`); never blocks."""
        with self._cond:
            return self._begin(ticket)

    def wait(self, ticket: Ticket, timeout: float) -> bool:
        """`begin`, waiting up to `timeout` seconds for a turn to free."""
        with self._cond:
            if self._begin(ticket):
                return True
            self._cond.wait(timeout)
            return self._begin(ticket)

    def ahead(self, ticket: Ticket) -> int:
        """How many wait before this ticket (for the log and status)."""
        with self._cond:
            waiting = self._waiting.get(ticket.host, [])
            return waiting.index(ticket) if ticket in waiting else 0

    def end(self, ticket: Ticket) -> None:
        """The catch-up is over (or its stream stops): its place or its turn is given up."""
        with self._cond:
            if self._mine.get((ticket.host, ticket.key)) is not ticket:
                return
            del self._mine[(ticket.host, ticket.key)]
            if ticket.running:
                self._running[ticket.host] -= 1
            else:
                self._waiting[ticket.host].remove(ticket)
            self._cond.notify_all()

    def _begin(self, ticket: Ticket) -> bool:
        if ticket.running:
            return True
        if self._mine.get((ticket.host, ticket.key)) is not ticket:
            raise ValueError(f"{ticket.key}: this ticket has left the line")
        now = self.pacer.clock()
        ticket.polled = now
        free = self.at_once - self._running.get(ticket.host, 0)
        if free <= 0 or self.pacer.held(ticket.host):
            return False
        for other in self._waiting[ticket.host]:  # the first `free` that still ask go
            if other is ticket:
                break
            if now - other.polled <= FRESH:
                free -= 1
                if free == 0:
                    return False
        self._waiting[ticket.host].remove(ticket)
        self._running[ticket.host] = self._running.get(ticket.host, 0) + 1
        ticket.running = True
        return True


LINE = Line()
