"""`alertd demo`: the real agent against a simulated exchange on 127.0.0.1, scripted.

No account and no network: the simulator speaks both protocols over real WebSockets, the
agent runs exactly as in production (same pipeline, state file, outbox and delivery workers),
and every notifier the rules name prints to this terminal.
"""

from __future__ import annotations

import dataclasses
import sqlite3
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

from alertd.authoring.record import Recording
from alertd.common.redact import redact_notifier_url
from alertd.config.load import Account, Config
from alertd.delivery.notify import Notifier, build_notifiers
from alertd.delivery.outbox import Outbox
from alertd.delivery.outbox import counts as outbox_counts
from alertd.ingest.stream import StreamSettings
from alertd.rules.load import load_rules
from alertd.rules.model import RuleSet
from alertd.runtime.agent import Agent
from alertd.sim.frames import (
    dd_balance,
    dd_order,
    dd_points,
    sx_balances,
    sx_liquidation,
    sx_order,
    sx_perps_state,
    sx_state_position,
    sx_trade,
)
from alertd.sim.simulator import Simulator, deltadefi_key, sodex_key

DEMO_KEY = "demo-key-0000"
DEMO_USER = "0xed3e79ef16a7890e6eaef2aa6373b6bec5d59d5c"
EXTRA = "--notify"
_print_lock = threading.Lock()


def example_rules_dir() -> Path:
    """The example rules: packaged with the wheel, or the repository's rules/ folder."""
    package = Path(__file__).resolve().parents[1]
    for candidate in (package / "example_rules", package.parent / "rules"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("example rules not found; pass --rules DIR")


def say(text: str) -> None:
    with _print_lock:
        print(text, flush=True)


class ConsoleNotifier:
    """Prints alerts to the terminal, and counts them for the summary."""

    MARK: ClassVar[dict[str, str]] = {"info": "i", "success": "+", "warning": "!", "failure": "x"}

    def __init__(self, name: str) -> None:
        self.name = name
        self.sent: list[tuple[str, str]] = []

    def send(self, title: str, body: str, severity: str) -> None:
        self.sent.append((title, body))
        say(f"    [{self.MARK.get(severity, '?')}] ALERT -> {self.name}: {title}\n"
            f"          {body}")


def run_demo(rules_dir: str | None = None, notify_urls: list[str] | None = None,
             pause: float = 0.5, record: str | None = None) -> int:
    """Play the scripted session; returns 0 when every expected alert arrived."""
    rules = load_rules(Path(rules_dir) if rules_dir else example_rules_dir(), None,
                       ["main", "desk"])
    consoles: dict[str, ConsoleNotifier] = {n: ConsoleNotifier(n)
                                            for n in sorted(rules.notifiers_used())}
    notifiers: dict[str, Notifier] = dict(consoles)
    if notify_urls:
        notifiers.update(build_notifiers({EXTRA: tuple(notify_urls)}, "--notify"))
        rules = RuleSet((dataclasses.replace(r, notify=(*r.notify, EXTRA)) for r in rules.rules),
                        (dataclasses.replace(r, notify=(*r.notify, EXTRA)) for r in rules.reports))
    with tempfile.TemporaryDirectory(prefix="alertd-demo-") as tmp, \
            Simulator(valid_keys={DEMO_KEY}) as sim:
        config = Config(
            path=Path("<demo>"), state_path=Path(tmp) / "state.db", stream_down_after=2.0,
            notifiers={n: ("console",) for n in notifiers},
            accounts=(Account("main", "deltadefi", sim.deltadefi_url, api_key=DEMO_KEY),
                      Account("desk", "sodex", sim.sodex_url, user=DEMO_USER,
                              markets=("spot", "perps"))))
        settings = StreamSettings(down_after=2.0, backoff_first=0.3, backoff_max=1.0, tick=0.2)
        agent = Agent(config, rules, notifiers, settings=settings)
        recording = Recording(Path(record)) if record else None
        agent.pipeline.recorder = recording
        say(f"alertd demo: simulated DeltaDeFi and SoDEX on {sim.deltadefi_url.split('/acc')[0]},"
            f" {rules.summary()}")
        agent.start()
        try:
            ok = _script(sim, agent, pause)
            _drain(agent)
        finally:
            agent.stop()
        again = Agent(config, rules, notifiers, settings=settings)
        again.pipeline.recorder = recording
        try:
            ok = _while_stopped(sim, again, consoles, pause) and ok
        finally:
            again.stop()
            if recording is not None:
                recording.close()
        if notify_urls:
            ok = _extra(config.state_path, notify_urls) and ok
        return _summary((agent, again), consoles, ok)


def _while_stopped(sim: Simulator, agent: Agent, consoles: dict[str, ConsoleNotifier],
                   pause: float) -> bool:
    """Stop alertd, let the exchange fill an order meanwhile, start again: the catch-up over
    REST before the first connect announces that fill once, and nothing seen before."""
    say("\n* alertd stops. While it is down, DeltaDeFi fills 500 of a new ADAUSDM order o-2 "
        "and 40 of a NIGHTUSDM order o-3 (no socket hears either)")
    sim.push_deltadefi(DEMO_KEY, dd_order("o-2", "partially_filled", [("x-3", "500")], "500"),
                       live=False)
    sim.push_deltadefi(DEMO_KEY, dd_order("o-3", "partially_filled", [("x-4", "40")], "40",
                                          qty="100", price="0.052", symbol="NIGHTUSDM"),
                       live=False)
    time.sleep(pause)
    say("\n* alertd starts again with the same state file; before connecting it catches up "
        "over REST")
    before = {name: len(c.sent) for name, c in consoles.items()}
    agent.start()
    ready = sim.wait_ready(deltadefi_key(DEMO_KEY), connects=2)
    arrived = sim.wait(lambda: sum(("500 @" in t or "40 @" in t)
                                   for c in consoles.values() for t, _ in c.sent) >= 2, 10)
    _drain(agent)
    time.sleep(pause)
    new = [t for name, c in consoles.items() for t, _ in c.sent[before[name]:]]
    say("  (each missed fill arrived once, read per trading pair and marked as missed while "
        "away; nothing seen before the stop was announced again)")
    return ready and arrived and sorted(new) == ["buy ADAUSDM: 500 @ 0.93",
                                                 "buy NIGHTUSDM: 40 @ 0.052"]


def _script(sim: Simulator, agent: Agent, pause: float) -> bool:
    spot, perps, dd = sodex_key(DEMO_USER, "spot"), sodex_key(DEMO_USER, "perps"), \
        deltadefi_key(DEMO_KEY)
    sim.snapshots[(spot, "accountUpdate")] = sx_balances("5000")
    ready = (sim.wait_ready(dd) and sim.wait_ready(spot, channels=4)
             and sim.wait_ready(perps, channels=5))
    say("\n* connected: DeltaDeFi account 'main'; SoDEX account 'desk' (spot + perps, "
        "subscriptions acknowledged)")
    pipeline = agent.pipeline

    def step(text: str, push: Callable[[], object], frames: int = 1) -> None:
        say(f"\n* {text}")
        before = pipeline.frames
        push()
        sim.wait(lambda: pipeline.frames >= before + frames, 5)
        _drain(agent)
        time.sleep(pause)

    step("DeltaDeFi balances: 1383.52 ADA, 1153.006812 USDM",
         lambda: sim.push_deltadefi(DEMO_KEY, dd_balance("1383.52097")))
    step("DeltaDeFi: limit buy 2000 ADAUSDM @ 0.93 placed",
         lambda: sim.push_deltadefi(DEMO_KEY, dd_order("o-1", "open", [], "0")))
    step("DeltaDeFi: partial fill, 800 of 2000",
         lambda: sim.push_deltadefi(DEMO_KEY, dd_order("o-1", "partially_filled",
                                                       [("x-1", "800")], "800")))
    step("DeltaDeFi re-sends the same frame (expect: no duplicate)",
         lambda: sim.push_deltadefi(DEMO_KEY, dd_order("o-1", "partially_filled",
                                                       [("x-1", "800")], "800")))
    step("DeltaDeFi: the remaining 1200 fill, order closed",
         lambda: sim.push_deltadefi(DEMO_KEY, dd_order(
             "o-1", "closed", [("x-1", "800"), ("x-2", "1200")], "2000")))
    step("DeltaDeFi: ADA balance dips to 450 (below 500)",
         lambda: sim.push_deltadefi(DEMO_KEY, dd_balance("450")))
    step("DeltaDeFi: ADA still low at 430 (expect: quiet, no repeat)",
         lambda: sim.push_deltadefi(DEMO_KEY, dd_balance("430")))
    step("DeltaDeFi: ADA back to 600 (re-arms the rule: one resolved notice)",
         lambda: sim.push_deltadefi(DEMO_KEY, dd_balance("600")))
    step("DeltaDeFi points: 9850, league silver (first league seen: recorded)",
         lambda: sim.push_deltadefi(DEMO_KEY, dd_points("9850", "silver")))
    step("DeltaDeFi points: 10150, league gold",
         lambda: sim.push_deltadefi(DEMO_KEY, dd_points("10150", "gold", "300")))
    step("SoDEX spot: buy 0.5 vBTC @ 60000 placed",
         lambda: sim.push_sodex(DEMO_USER, "spot", "accountOrderUpdate", sx_order("NEW", "0")))
    step("SoDEX spot: trade 0.2, then 0.3, then the order is FILLED (expect: the two fills "
         "of the order as one message, sent as soon as the order is complete)", lambda: (
        sim.push_sodex(DEMO_USER, "spot", "accountTrade", sx_trade(901, "0.2")),
        sim.push_sodex(DEMO_USER, "spot", "accountTrade", sx_trade(902, "0.3")),
        sim.push_sodex(DEMO_USER, "spot", "accountOrderUpdate", sx_order("FILLED", "0.5"))),
        frames=3)
    say("\n* SoDEX spot connection cut without a close frame; the exchange refuses "
        "reconnects for 3 s")
    sim.refuse("sodex", 3.0)
    connects = sim.connects[spot]
    sim.drop(spot)
    back = sim.wait_ready(spot, connects=connects + 1, channels=4, timeout=15)
    _drain(agent)
    time.sleep(pause)
    say("  (reconnected, resubscribed; the balance snapshot it re-sent raised nothing)")
    step("SoDEX spot: 4100 vUSDC withdrawn, 900 left", lambda: sim.push_sodex(
        DEMO_USER, "spot", "accountUpdate", sx_balances("900")))
    _perps(sim, step)
    return ready and back


def _perps(sim: Simulator, step: Callable[..., None]) -> None:
    """A perps position that goes wrong: margin use climbs past 80 % (one warning), the
    exchange liquidates it (one alert, from its accountEvent), and the margin is free again
    (one resolved notice)."""
    def state(available: str, value: str = "5000", open_: bool = True) -> Callable[[], int]:
        position = [sx_state_position("BTC-USD", "0.5", "60000", lp="51900", ur="-600",
                                      leverage=20)] if open_ else []
        return lambda: sim.push_sodex(DEMO_USER, "perps", "accountState", sx_perps_state(
            position, av=value, am=available, wallet=value), kind="snapshot")

    step("SoDEX perps: long 0.5 BTC-USD @ 60000, cross margin; 70 % of the account value in "
         "use", state("1500"))
    step("SoDEX perps: the price falls; 85 % in use (expect: one margin warning)",
         state("750"))
    step("SoDEX perps: still 82 % (expect: quiet, no repeat)", state("900"))
    step("SoDEX perps: BTC-USD liquidated at mark 52000 (expect: one liquidation alert)",
         lambda: sim.push_sodex(DEMO_USER, "perps", "accountEvent", sx_liquidation(
             "BTC-USD", "0.5", "52000", "51900", av="4000")))
    step("SoDEX perps: the position is gone, the margin free again (expect: resolved)",
         state("4000", value="4000", open_=False))


def _drain(agent: Agent, timeout: float = 10.0) -> None:
    """Wait until every alert left its group and reached the console (a `--notify` URL is
    not waited for: one that takes nothing must not hold the demo up; see `_extra`)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts = agent.core.call(Outbox(agent.store).counts)
        if agent.core.call(agent.pipeline.groups.count) == 0 and all(
                c["pending"] == 0 for name, c in counts.items() if name != EXTRA):
            return
        time.sleep(0.05)


def _extra(state: Path, urls: list[str]) -> bool:
    """Say what the `--notify` URLs got; False if they took nothing, or left alerts behind."""
    db = sqlite3.connect(state)
    try:
        got = outbox_counts(db).get(EXTRA, {})
    finally:
        db.close()
    delivered, left = got.get("delivered", 0) + got.get("folded", 0), (
        got.get("pending", 0) + got.get("dead", 0))
    shown = ", ".join(redact_notifier_url(u) for u in urls)
    if left == 0:
        say(f"--notify {shown}: took all {delivered} alerts")
        return delivered > 0
    say(f"--notify {shown}: {'took nothing' if delivered == 0 else f'took {delivered}'}, "
        f"{left} alerts not delivered; try `alertd notify-test URL` for the reason")
    return False


def _summary(agents: tuple[Agent, ...], consoles: dict[str, ConsoleNotifier], ok: bool) -> int:
    frames = sum(a.pipeline.frames for a in agents)
    alerts = sum(a.pipeline.alerts for a in agents)
    messages = sum(a.pipeline.messages for a in agents)
    sent = sum(len(c.sent) for c in consoles.values())
    dropped = sum(sum(a.pipeline.drops.counts.values()) for a in agents)
    reconnects = sum(max(0, s.connects - 1) for s in agents[0].streams)
    say(f"\nsummary: {frames} frames, {alerts} alerts in {messages} messages after grouping "
        f"({sent} deliveries to {len(consoles)} notifiers), {dropped} dropped frames, "
        f"{reconnects} reconnects")
    unique = {(n, t, b) for n, c in consoles.items() for t, b in c.sent}
    good = ok and len(unique) == sent and sent > 0
    say("demo finished: every alert once, none repeated" if good
        else "demo finished with problems (see above)")
    sys.stdout.flush()
    return 0 if good else 1
