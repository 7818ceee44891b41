"""`alertd sim`: the simulated exchanges on 127.0.0.1, driven by hand, for a real alertd.

It prints a config that points alertd at them, then reads one command a line (a prompt on a
terminal, or a pipe) and makes the exchange do it: fill an order, move a balance, change a
league, open or liquidate a position, drop a stream. Every frame goes through the simulator,
which holds it to `contracts/` as it holds its own, so a user's rules and notifiers are tried
end to end on frames the real exchanges could send, before any real account is connected.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from types import FrameType
from typing import Any, TextIO

from alertd.common.suggest import did_you_mean
from alertd.domain.events import LEAGUES
from alertd.sim.frames import (
    dd_balances,
    dd_order,
    dd_points,
    sx_liquidation,
    sx_order,
    sx_perps_state,
    sx_spot_update,
    sx_state_position,
    sx_trade,
)
from alertd.sim.simulator import Simulator, deltadefi_key, sodex_key

SIM_KEY = "sim-key-0000"
"""The one DeltaDeFi API key the sim accepts (a placeholder: the real key stays out of it)."""
SIM_USER = "0x0000000000000000000000000000000000005111"
DD_PAIRS = ("ADAUSDM", "NIGHTUSDM")
"""The trading pairs the simulated DeltaDeFi serves (its market config, `simrest.py`)."""
DD_UNITS = {"ada": "lovelace",
            "usdm": "c48cbb3d5e57ed56e276bc45f99ab39abe94e6cd7ac39fb402da47ad.0014df105553444d",
            "night": "0691b2fecca1ac4f53cb6dfb00b7013e561d1f34403b957cbb5af1fa4e49474854"}
"""DeltaDeFi's assets and their units, as its market config lists them."""
PERPS_ASSET = "vUSDC"
LEVERAGE = 10
MAX_REFUSE = 3600
_NUMBER = re.compile(r"^\d{1,20}(\.\d{1,18})?$")
_SYMBOL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_./-]{0,31}$")
_ASSET = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,15}$")

MARKETS = {"main": "main", "spot": "spot", "perps": "perps", "desk/spot": "spot",
           "desk/perps": "perps"}
"""Where a command acts: DeltaDeFi account `main`, or SoDEX account `desk`'s markets."""
STREAMS = {"main": ("main",), "spot": ("spot",), "perps": ("perps",), "desk/spot": ("spot",),
           "desk/perps": ("perps",), "desk": ("spot", "perps"), "all": ("main", "spot", "perps")}

USAGE = {
    "fill": ("fill main|spot|perps SYMBOL buy|sell QTY @ PRICE", "an order fills whole"),
    "balance": ("balance main|spot|perps ASSET AMOUNT", "set a free balance"),
    "league": ("league main " + "|".join(LEAGUES), "+100 points, in this league"),
    "position": ("position perps SYMBOL long|short|flat [SIZE @ ENTRY]",
                 "open, resize or close a position"),
    "liquidate": ("liquidate perps SYMBOL [@ MARK]", "liquidate it (mark: its liquidation price)"),
    "drop": ("drop main|spot|perps|desk|all [SECONDS]", "cut sockets, refuse reconnects SECONDS"),
    "status": ("status", "which streams are connected"),
    "help": ("help", "this list"),
    "quit": ("quit", "stop (so do end of input, Ctrl-C, SIGTERM)"),
}


class CommandError(ValueError):
    """A line the sim cannot do; its text is the one line that says how to fix it."""


@dataclass(frozen=True)
class Fill:
    market: str
    symbol: str
    side: str
    qty: Decimal
    price: Decimal


@dataclass(frozen=True)
class Balance:
    """A free amount; on spot the total too (nothing locked), on perps the wallet."""

    market: str
    asset: str
    amount: Decimal


@dataclass(frozen=True)
class League:
    league: str


@dataclass(frozen=True)
class Position:
    symbol: str
    size: Decimal
    """Signed, as a one-way position is: long above zero, short below, flat at zero."""
    entry: Decimal


@dataclass(frozen=True)
class Liquidate:
    symbol: str
    mark: Decimal | None


@dataclass(frozen=True)
class Drop:
    """Cut these streams' sockets; `refuse`: seconds their exchange then answers 503."""

    streams: tuple[str, ...]
    refuse: float


@dataclass(frozen=True)
class Simple:
    """`status`, `help` or `quit`."""

    name: str


Action = Fill | Balance | League | Position | Liquidate | Drop | Simple


def help_text() -> str:
    width = max(len(u) for u, _ in USAGE.values())
    return "\n".join(f"  {u:<{width}}  {what}" for u, what in USAGE.values())


def parse(line: str) -> Action | None:
    """One command line as an action; None for a blank line or a `#` comment. A line it
    cannot read raises CommandError saying what to type instead."""
    words = line.replace("@", " @ ").split()
    if not words or words[0].startswith("#"):
        return None
    name, args = words[0].lower(), [w for w in words[1:] if w != "@"]
    if name not in USAGE:
        raise CommandError(f"unknown command '{words[0]}'{did_you_mean(name, USAGE)} "
                           "(help lists them)")
    try:
        return _PARSERS[name](args)
    except CommandError as exc:
        raise CommandError(f"{name}: {exc} (usage: {USAGE[name][0]})") from None


def _count(args: list[str], n: int, most: int | None = None) -> None:
    if len(args) < n:
        raise CommandError("words missing")
    if len(args) > (n if most is None else most):
        raise CommandError(f"too many words ('{' '.join(args)}')")


def _market(word: str, allowed: tuple[str, ...]) -> str:
    market = MARKETS.get(word.lower())
    if market is None or market not in allowed:
        raise CommandError(f"'{word}' is not one of {', '.join(allowed)}"
                           + did_you_mean(word.lower(), allowed))
    return market


def _amount(word: str, what: str, positive: bool = True) -> Decimal:
    if not _NUMBER.match(word) or (positive and Decimal(word) == 0):
        raise CommandError(f"{what} '{word}' is not a {'positive ' if positive else ''}"
                           "decimal number like 0.5 or 65000")
    return Decimal(word)


def _symbol(word: str, market: str) -> str:
    if market == "main":
        found = next((p for p in DD_PAIRS if p == word.upper()), None)
        if found is None:
            raise CommandError(f"DeltaDeFi trades {', '.join(DD_PAIRS)}, not '{word}'")
        return found
    if not _SYMBOL.match(word):
        raise CommandError(f"'{word}' is not a symbol like vBTC_vUSDC or BTC-USD")
    return word


def _fill(args: list[str]) -> Fill:
    _count(args, 5)
    market = _market(args[0], ("main", "spot", "perps"))
    side = args[2].lower()
    if side not in ("buy", "sell"):
        raise CommandError(f"'{args[2]}' is not buy or sell")
    return Fill(market, _symbol(args[1], market), side, _amount(args[3], "quantity"),
                _amount(args[4], "price"))


def _balance(args: list[str]) -> Balance:
    _count(args, 3)
    market = _market(args[0], ("main", "spot", "perps"))
    asset = args[1]
    if market == "main":
        asset = asset.lower()
        if asset not in DD_UNITS:
            raise CommandError(f"DeltaDeFi's assets are {', '.join(DD_UNITS)}, not '{args[1]}'")
    elif market == "perps":
        if asset.lower() not in (PERPS_ASSET.lower(), "usdc"):
            raise CommandError(f"a perps account holds {PERPS_ASSET} only, not '{args[1]}'")
        asset = PERPS_ASSET
    elif not _ASSET.match(asset):
        raise CommandError(f"'{asset}' is not an asset like vUSDC or vBTC")
    return Balance(market, asset, _amount(args[2], "amount", positive=False))


def _league(args: list[str]) -> League:
    _count(args, 2)
    _market(args[0], ("main",))
    league = args[1].lower()
    if league not in LEAGUES:
        raise CommandError(f"'{args[1]}' is not a league{did_you_mean(league, LEAGUES)}")
    return League(league)


def _position(args: list[str]) -> Position:
    _count(args, 3, 5)
    _market(args[0], ("perps",))
    symbol, side = _symbol(args[1], "perps"), args[2].lower()
    if side == "flat":
        _count(args, 3)
        return Position(symbol, Decimal(0), Decimal(0))
    if side not in ("long", "short"):
        raise CommandError(f"'{args[2]}' is not long, short or flat")
    _count(args, 5)
    size = _amount(args[3], "size", positive=False)
    return Position(symbol, -size if side == "short" else size,
                    _amount(args[4], "entry price"))


def _liquidate(args: list[str]) -> Liquidate:
    _count(args, 2, 3)
    _market(args[0], ("perps",))
    return Liquidate(_symbol(args[1], "perps"),
                     _amount(args[2], "mark price") if len(args) == 3 else None)


def _drop(args: list[str]) -> Drop:
    _count(args, 1, 2)
    streams = STREAMS.get(args[0].lower())
    if streams is None:
        raise CommandError(f"'{args[0]}' is not one of main, spot, perps, desk, all"
                           + did_you_mean(args[0].lower(), STREAMS))
    refuse = _amount(args[1], "seconds", positive=False) if len(args) == 2 else Decimal(0)
    if refuse > MAX_REFUSE:
        raise CommandError(f"refuse reconnects for at most {MAX_REFUSE} seconds")
    return Drop(streams, float(refuse))


def _simple(name: str) -> Callable[[list[str]], Simple]:
    def parse_simple(args: list[str]) -> Simple:
        _count(args, 0)
        return Simple(name)
    return parse_simple


_PARSERS: dict[str, Callable[[list[str]], Action]] = {
    "fill": _fill, "balance": _balance, "league": _league, "position": _position,
    "liquidate": _liquidate, "drop": _drop, "status": _simple("status"),
    "help": _simple("help"), "quit": _simple("quit")}


def _text(amount: Decimal) -> str:
    """An amount as plain digits, never in exponent form (both exchanges write them so)."""
    text = format(amount, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


class SimConsole:
    """The accounts as the sim's commands leave them, and the frames that tell alertd so.

    SoDEX restates an account on subscribe, so the sim keeps those snapshots current: alertd
    reconnecting after a `drop` sees the account as it now is, as it would on the exchange."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.dd_free: dict[str, Decimal] = {}
        self.points, self.league = Decimal(10000), ""
        self.spot: dict[str, tuple[Decimal, Decimal]] = {"vUSDC": (Decimal(5000), Decimal(0)),
                                                         "vBTC": (Decimal("0.5"), Decimal(0))}
        self.wallet = Decimal(10000)
        self.positions: dict[str, tuple[Decimal, Decimal]] = {
            "BTC-USD": (Decimal("0.5"), Decimal(60000))}
        self._base = int(time.time() * 1000)
        """Ids start from the clock, so a new sim never re-uses one an alertd state file has
        seen (alertd would take the fill for a repeat and say nothing)."""
        self._n = 0
        self._violations = 0
        self.keys = {"main": deltadefi_key(SIM_KEY), "spot": sodex_key(SIM_USER, "spot"),
                     "perps": sodex_key(SIM_USER, "perps")}
        self._snapshot()

    def _next(self) -> int:
        self._n += 1
        return self._base + self._n

    def _snapshot(self) -> None:
        self.sim.snapshots[(self.keys["spot"], "accountUpdate")] = self._spot_frame(self.spot)
        self.sim.snapshots[(self.keys["perps"], "accountState")] = self._perps_frame()

    def _spot_frame(self, balances: dict[str, tuple[Decimal, Decimal]]) -> dict[str, Any]:
        return sx_spot_update([(a, _text(t), _text(lk)) for a, (t, lk) in balances.items()])

    def _perps_frame(self) -> dict[str, Any]:
        used = sum((abs(size) * entry / LEVERAGE for size, entry in self.positions.values()),
                   Decimal(0))
        positions = [sx_state_position(s, _text(size), _text(entry), leverage=LEVERAGE,
                                       lp=_text(self._liquidation_price(size, entry)))
                     for s, (size, entry) in self.positions.items()]
        value = _text(self.wallet)
        return sx_perps_state(positions, av=value, am=_text(max(self.wallet - used, Decimal(0))),
                              wallet=value, user=SIM_USER)

    @staticmethod
    def _liquidation_price(size: Decimal, entry: Decimal) -> Decimal:
        move = Decimal("0.9") / LEVERAGE
        return entry * (1 - move) if size > 0 else entry * (1 + move)

    def _to(self, sent: int) -> str:
        if sent:
            return f"to {sent} socket{'s' if sent != 1 else ''}"
        return "to no socket (alertd is not connected)"

    # --- the commands ----------------------------------------------------------------------

    def apply(self, action: Action) -> str:
        """Do it on the simulated exchange; the one line that says what was pushed."""
        if isinstance(action, Fill):
            return self._fill(action)
        if isinstance(action, Balance):
            return self._balance(action)
        if isinstance(action, League):
            return self._league(action)
        if isinstance(action, Position):
            return self._position(action)
        if isinstance(action, Liquidate):
            return self._liquidate(action)
        if isinstance(action, Drop):
            return self._drop(action)
        if action.name == "status":
            return self.status()
        return help_text() if action.name == "help" else "bye"

    def _fill(self, f: Fill) -> str:
        what = f"{f.side} {_text(f.qty)} {f.symbol} @ {_text(f.price)}"
        if f.market == "main":
            order = f"sim-{self._next()}"
            sent = self.sim.push_deltadefi(SIM_KEY, dd_order(
                order, "closed", [(f"{order}-t1", _text(f.qty))], _text(f.qty),
                qty=_text(f.qty), price=_text(f.price), symbol=f.symbol, side=f.side))
            return f"pushed main order_info {order} ({what}, filled) {self._to(sent)}"
        order, trade, perps = self._next(), self._next(), f.market == "perps"
        qty, price, side = _text(f.qty), _text(f.price), f.side.upper()
        fee = _text(f.qty * f.price * Decimal("0.0005"))
        sent = self.sim.push_sodex(SIM_USER, f.market, "accountTrade", sx_trade(
            trade, qty, symbol=f.symbol, side=side, price=price, order_id=order,
            client_id=f"sim-{order}", fee=fee))
        self.sim.push_sodex(SIM_USER, f.market, "accountOrderUpdate", sx_order(
            "FILLED", qty, symbol=f.symbol, side=side, price=price, qty=qty, order_id=order,
            client_id=f"sim-{order}", perps=perps))
        return (f"pushed desk/{f.market} accountTrade {trade} and accountOrderUpdate {order} "
                f"FILLED ({what}) {self._to(sent)}")

    def _balance(self, b: Balance) -> str:
        amount = _text(b.amount)
        if b.market == "main":
            self.dd_free[b.asset] = b.amount
            sent = self.sim.push_deltadefi(SIM_KEY, dd_balances(
                [(a, DD_UNITS[a], _text(free), "0") for a, free in self.dd_free.items()]))
            return f"pushed main balance: {b.asset} free {amount} {self._to(sent)}"
        if b.market == "spot":
            asset = next((a for a in self.spot if a.lower() == b.asset.lower()), b.asset)
            self.spot[asset] = (b.amount, Decimal(0))
            self._snapshot()
            sent = self.sim.push_sodex(SIM_USER, "spot", "accountUpdate",
                                       self._spot_frame({asset: self.spot[asset]}))
            return f"pushed desk/spot accountUpdate: {asset} total {amount} {self._to(sent)}"
        self.wallet = b.amount
        return f"pushed desk/perps accountState: {PERPS_ASSET} wallet {amount} " \
               + self._restate()

    def _restate(self) -> str:
        self._snapshot()
        frame = self.sim.snapshots[(self.keys["perps"], "accountState")]
        sent = self.sim.push_sodex(SIM_USER, "perps", "accountState", frame, kind="snapshot")
        return f"(account value {frame['av']}, available {frame['am']}) {self._to(sent)}"

    def _league(self, lg: League) -> str:
        self.points += 100
        first = not self.league
        self.league = lg.league
        sent = self.sim.push_deltadefi(SIM_KEY, dd_points(_text(self.points), lg.league, "100",
                                                          season=_text(self.points)))
        note = " (the first league alertd sees is only recorded)" if first else ""
        return f"pushed main dlta_points: {_text(self.points)} points, league {lg.league} " \
               f"{self._to(sent)}{note}"

    def _position(self, p: Position) -> str:
        if p.size == 0:
            if self.positions.pop(p.symbol, None) is None:
                raise CommandError(f"position: no open {p.symbol} position to close"
                                   + self._open_ones())
            return f"pushed desk/perps accountState: {p.symbol} closed " + self._restate()
        self.positions[p.symbol] = (p.size, p.entry)
        side = "long" if p.size > 0 else "short"
        return (f"pushed desk/perps accountState: {side} {_text(abs(p.size))} {p.symbol} @ "
                f"{_text(p.entry)} " + self._restate())

    def _open_ones(self) -> str:
        return f" (open: {', '.join(self.positions)})" if self.positions else " (none is open)"

    def _liquidate(self, q: Liquidate) -> str:
        if q.symbol not in self.positions:
            raise CommandError(f"liquidate: no open {q.symbol} position{self._open_ones()}; "
                               f"open one first: position perps {q.symbol} long 0.5 @ 60000")
        size, entry = self.positions.pop(q.symbol)
        lp = self._liquidation_price(size, entry)
        mark = lp if q.mark is None else q.mark
        self.wallet = max(self.wallet - abs(size) * abs(entry - mark), Decimal(0))
        sent = self.sim.push_sodex(SIM_USER, "perps", "accountEvent", sx_liquidation(
            q.symbol, _text(size), _text(mark), _text(lp), av=_text(self.wallet),
            lid=self._next()))
        self._restate()
        side = "long" if size > 0 else "short"
        return (f"pushed desk/perps accountEvent liquidation: {side} {_text(abs(size))} "
                f"{q.symbol} at mark {_text(mark)}, then accountState without it (account "
                f"value {_text(self.wallet)}) {self._to(sent)}")

    def _drop(self, d: Drop) -> str:
        cut = sum(self.sim.drop(self.keys[s]) for s in d.streams)
        names = ", ".join("main" if s == "main" else f"desk/{s}" for s in d.streams)
        line = f"dropped {names}: {cut} socket{'s' if cut != 1 else ''} cut without a close frame"
        if not d.refuse:
            return line
        exchanges = {"deltadefi": "DeltaDeFi", "sodex": "SoDEX"}
        refusing = [exchanges[e] for e in exchanges
                    if any((s == "main") == (e == "deltadefi") for s in d.streams)]
        for exchange in refusing:
            self.sim.refuse(exchange.lower(), d.refuse)
        verb = "refuses" if len(refusing) == 1 else "refuse"
        return f"{line}; {' and '.join(refusing)} {verb} reconnects for {d.refuse:g} s"

    def status(self) -> str:
        parts = []
        for stream, key in self.keys.items():
            name = "main" if stream == "main" else f"desk/{stream}"
            live = len(self.sim.clients(key))
            if not live:
                parts.append(f"{name}: not connected")
                continue
            channels = f", {len(self.sim.channels(key))} channels" if stream != "main" else ""
            parts.append(f"{name}: connected{channels} ({self.sim.connects[key]} connects)")
        return "; ".join(parts)

    def new_violations(self) -> list[str]:
        """Contract violations since the last look (none, unless something is wrong)."""
        found = self.sim.contract_violations
        if len(found) < self._violations:
            self._violations = 0
        new, self._violations = found[self._violations:], len(found)
        return new


def snippet(sim: Simulator) -> str:
    """The config that points alertd at this sim: everything but the notifiers."""
    return "\n".join([
        "# --- alertd sim: a config for the simulated exchanges; add your notifiers: ---",
        "accounts:",
        "  - name: main                  # DeltaDeFi; sim commands call it: main",
        "    exchange: deltadefi",
        f"    api_key: {SIM_KEY}        # the only key the sim accepts",
        f"    url: {sim.deltadefi_url}",
        "  - name: desk                  # SoDEX; sim commands call it: spot, perps",
        "    exchange: sodex",
        f'    user: "{SIM_USER}"',
        f"    url: {sim.sodex_url}",
        "state: ./alertd-sim.db          # apart from your real state file",
        "stream_down_after: 10           # seconds; `drop main 15` then raises a stream alert",
        "# --- end ---"])


def intro(sim: Simulator) -> str:
    return "\n".join([
        f"alertd sim: simulated DeltaDeFi and SoDEX on {sim.host}:{sim.port}", "",
        "Save this as sim.yaml, add your `notifiers:`, and in another shell run",
        "  alertd --rules myrules/ --config sim.yaml", "",
        snippet(sim), "",
        "desk/spot starts with 5000 vUSDC and 0.5 vBTC, desk/perps with a 10000 vUSDC wallet",
        f"and long 0.5 BTC-USD @ 60000 ({LEVERAGE}x); a fill moves no balance or position.",
        "Commands, one a line:",
        help_text()])


class _Stop(Exception):
    """SIGTERM or SIGINT: stop as `quit` does."""


def _lines(stdin: TextIO, out: TextIO) -> Iterator[str]:
    """Command lines: a prompt with line editing on a terminal, plain lines from a pipe."""
    tty = stdin.isatty() and out.isatty()
    if tty:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (input() then edits lines and keeps a history)
    while True:
        if tty:
            try:
                yield input("sim> ")
            except EOFError:  # Ctrl-D: end the prompt's line before the last word
                out.write("\n")
                return
        else:
            line = stdin.readline()
            if not line:
                return
            yield line


@contextlib.contextmanager
def _signals_stop() -> Iterator[None]:
    """SIGTERM and SIGINT end the command loop once; a second one during shutdown waits."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    fired: list[int] = []

    def stop(signum: int, _frame: FrameType | None) -> None:
        if not fired:
            fired.append(signum)
            raise _Stop

    before = {s: signal.signal(s, stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for s, handler in before.items():
            signal.signal(s, handler)


def _start_deaf(sim: Simulator) -> None:
    """Start the simulator's threads with SIGTERM and SIGINT blocked, so that the kernel
    hands those to the main thread, interrupting its wait for a line; one delivered to a
    server thread would wait, unhandled, until the next line came."""
    if not hasattr(signal, "pthread_sigmask"):
        sim.start()
        return
    before = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        sim.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, before)


def _write_port(path: Path, port: int) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(f"{port}\n", encoding="utf-8")
    os.replace(tmp, path)


def run_sim(port: int = 0, port_file: str | None = None,
            stdin: TextIO | None = None, out: TextIO | None = None) -> int:
    """Serve on `port` (0: any free one) until `quit`, the end of input, SIGINT or SIGTERM;
    0 then, 1 if it cannot listen."""
    stdin, out = stdin or sys.stdin, out or sys.stdout

    def say(text: str) -> None:
        out.write(text + "\n")
        out.flush()

    sim = Simulator(valid_keys={SIM_KEY}, port=port)
    try:
        _start_deaf(sim)
    except OSError as exc:
        why = "in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        print(f"alertd sim: cannot listen on 127.0.0.1:{port} ({why}); pass --port N, or "
              "--port 0 for any free port", file=sys.stderr)
        return 1
    written = Path(port_file) if port_file else None
    try:
        with _signals_stop():
            try:
                _serve(SimConsole(sim), written, stdin, out, say)
            finally:
                sim.stop()
                if written is not None:
                    with contextlib.suppress(OSError):
                        written.unlink()
    except _Stop:
        if out.isatty():  # Ctrl-C at the prompt
            out.write("\n")
    say("alertd sim: stopped")
    return 0


def _serve(console: SimConsole, port_file: Path | None, stdin: TextIO, out: TextIO,
           say: Callable[[str], None]) -> None:
    if port_file is not None:
        _write_port(port_file, console.sim.port)
    say(intro(console.sim))
    for line in _lines(stdin, out):
        try:
            action = parse(line)
            if action == Simple("quit"):
                return
            if action is not None:
                say(console.apply(action))
        except CommandError as exc:
            say(f"error: {exc}")
        except Exception as exc:  # one command's failure must not end the sim
            say(f"error: {type(exc).__name__}: {exc}")
        for violation in console.new_violations():
            say(f"warning: contract violation: {violation}")
