"""Rate limits per destination, and the digests that keep them without losing an alert.

Chat services throttle bots (Slack about one message a second per webhook, Telegram about 20
a minute per group) and mail servers dislike bursts, so each URL of a notifier has a rate:
its own `rate:` or its service's default. Past it, alerts are not dropped or queued behind
each other for minutes: what is waiting goes out as one digest in the next free slot, a short
line per alert, DIGEST_MAX alerts per digest at most.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from alertd.common.timespec import period
from alertd.domain.alerts import highest
from alertd.domain.templates import one_line

DIGEST_MAX = 50
"""Alerts per digest: 50 lines of at most 200 characters fit every service's message size."""


@dataclass(frozen=True, slots=True)
class Rate:
    """At most `count` messages in any `per` seconds."""

    count: int
    per: float

    def __str__(self) -> str:
        for unit, seconds in (("d", 86400), ("h", 3600), ("min", 60)):
            if self.per == seconds:
                return f"{self.count}/{unit}"
        return f"{self.count}/{self.per:g}s"


SERVICE_RATES: dict[str, Rate] = {
    "slack": Rate(1, 1.0), "tgram": Rate(20, 60.0), "mailto": Rate(10, 60.0),
    "mailtos": Rate(10, 60.0), "discord": Rate(5, 2.0),
}
"""What each service takes (its documented or measured limit), used unless `rate:` is set."""


class RateError(ValueError):
    """What is wrong with a `rate:` setting."""


def parse_rate(text: Any) -> Rate | None:
    """`20/min`, `1/s`, `100/hour`, `5/10s`; `none` for no limit."""
    value = str(text).strip().lower()
    if value in ("none", "false", "off"):
        return None
    count, _, per = value.partition("/")
    seconds = period(per)
    if not count.strip().isdigit() or int(count) < 1 or seconds is None:
        raise RateError(f"rate is a count per time, such as 20/min, 1/s or 100/hour (or none), "
                        f"not {text!r}")
    return Rate(int(count), seconds)


def service_rate(url: str) -> Rate | None:
    return SERVICE_RATES.get(url.split("://", 1)[0].lower())


class Window:
    """The send times of one destination within its rate's period (none kept if unlimited)."""

    def __init__(self, rate: Rate | None, sent: Iterable[float] = ()) -> None:
        self.rate = rate
        self._sent: deque[float] = deque(sorted(sent)[-rate.count:] if rate else ())

    def room(self, now: float) -> int:
        """How many messages may go now."""
        if self.rate is None:
            return 1 << 30
        if self._sent and self._sent[-1] > now:  # the wall clock stepped back: a send seen
            self._sent = deque(min(t, now) for t in self._sent)  # "later" was by now at most
        while self._sent and self._sent[0] <= now - self.rate.per:
            self._sent.popleft()
        return max(0, self.rate.count - len(self._sent))

    def free_at(self, now: float) -> float:
        """When the next message may go."""
        if self.room(now) or self.rate is None:
            return now
        return self._sent[0] + self.rate.per

    def note(self, when: float) -> None:
        if self.rate is not None:
            self._sent.append(when)


T = TypeVar("T")


def plan(waiting: Sequence[T], room: int, fold: Sequence[bool] | None = None,
         urgent: Sequence[bool] | None = None) -> list[list[T]]:
    """Messages to send now, in order: each a list of alerts (one: itself; more: a digest).

    Alerts marked `urgent` (failures) go first, each alone, and are never folded: one that
    finds no room waits for the next free slot. The others that fit go alone; when more wait
    than fit, the last free slot carries the rest as a digest. Alerts marked in `fold` (held
    by quiet hours) always share a digest."""
    fold = fold or [False] * len(waiting)
    urgent = urgent or [False] * len(waiting)
    first = [a for a, u in zip(waiting, urgent, strict=True) if u]
    messages: list[list[T]] = [[a] for a in first[:max(0, room)]]
    room -= len(messages)
    rest = [(a, f) for a, f, u in zip(waiting, fold, urgent, strict=True) if not u]
    held = [a for a, f in rest if f]
    alone = [a for a, f in rest if not f]
    if held and room:
        messages.append(held[:DIGEST_MAX])
        room -= 1
    if room <= 0:
        return messages
    if len(alone) <= room:
        return messages + [[a] for a in alone]
    messages += [[a] for a in alone[:room - 1]]
    messages.append(alone[room - 1:room - 1 + DIGEST_MAX])
    return messages


def digest(items: Sequence[tuple[str, str, str]], *, held: bool,
           rate: Rate | None) -> tuple[str, str, str]:
    """Title, body and severity of one message for several alerts (title, body, severity):
    the count and why they come together, then a short line each."""
    why = "held in quiet hours" if held else f"over the rate limit of {rate}"
    severity = highest(s for _, _, s in items)
    body = "\n".join(one_line(title, text) for title, text, _ in items)
    return f"{len(items)} alerts ({why})", body, severity
