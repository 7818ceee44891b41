"""`alertd sim` as a user drives it: the command lines it reads, the frames each one pushes to
a real alertd (and the alert that comes of it), and the whole thing as two processes, the sim
and alertd on the config the sim printed, delivering to a webhook."""

from __future__ import annotations

import io
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from decimal import Decimal as D
from pathlib import Path

import pytest

from alertd.sim.console import (
    DD_PAIRS,
    DD_UNITS,
    SIM_KEY,
    Balance,
    CommandError,
    Drop,
    Fill,
    League,
    Liquidate,
    Position,
    SimConsole,
    Simple,
    parse,
    run_sim,
    snippet,
)
from alertd.sim.simulator import Simulator
from tests.conftest import running, write
from tests.sinks import free_port, wait_for

RULES = """
rules:
  - name: fill
    on: fill
    notify: [hook]
    group_wait: 0
    title: "fill {account} {side} {symbol} {qty} @ {price}"
  - name: low
    on: balance
    when: {asset: {in: [ada, vUSDC]}, free: {lt: 500}}
    notify: [hook]
    group_wait: 0
    title: "low {account} {market} {asset} {free}"
  - name: league
    on: league
    notify: [hook]
    group_wait: 0
    title: "league {previous} -> {league}"
  - name: eth
    on: position
    when: {symbol: ETH-USD}
    notify: [hook]
    group_wait: 0
    title: "position {symbol} {side}"
  - name: margin
    on: margin
    when: {margin_ratio: {gte: 0.8}}
    notify: [hook]
    group_wait: 0
    title: "margin high"
  - name: liquidated
    on: liquidation
    notify: [hook]
    group_wait: 0
    title: "liquidated {side} {symbol} at {mark_price}"
  - name: streams
    on: stream
    notify: [hook]
    group_wait: 0
    title: "stream {account} {market} {status}"
"""
ALERTD = [sys.executable, "-m", "alertd"]


@pytest.mark.parametrize(("line", "action"), [
    ("fill main ADAUSDM buy 500 @ 0.93", Fill("main", "ADAUSDM", "buy", D(500), D("0.93"))),
    ("FILL main adausdm SELL 500@0.93", Fill("main", "ADAUSDM", "sell", D(500), D("0.93"))),
    ("fill spot vBTC_vUSDC buy 0.5 @ 65000",
     Fill("spot", "vBTC_vUSDC", "buy", D("0.5"), D(65000))),
    ("fill desk/perps BTC-USD sell 0.1 65000", Fill("perps", "BTC-USD", "sell", D("0.1"),
                                                     D(65000))),
    ("balance main ADA 450", Balance("main", "ada", D(450))),
    ("balance spot vUSDC 0", Balance("spot", "vUSDC", D(0))),
    ("balance perps usdc 3500", Balance("perps", "vUSDC", D(3500))),
    ("league main Gold", League("gold")),
    ("position perps ETH-USD short 2 @ 3000", Position("ETH-USD", D(-2), D(3000))),
    ("position perps BTC-USD flat", Position("BTC-USD", D(0), D(0))),
    ("liquidate perps BTC-USD", Liquidate("BTC-USD", None)),
    ("liquidate perps BTC-USD @ 52000", Liquidate("BTC-USD", D(52000))),
    ("drop main", Drop(("main",), 0.0)),
    ("drop desk 30", Drop(("spot", "perps"), 30.0)),
    ("drop all 1.5", Drop(("main", "spot", "perps"), 1.5)),
    ("status", Simple("status")),
    (" help ", Simple("help")),
    ("QUIT", Simple("quit")),
    ("", None),
    ("   # a note to self", None),
])
def test_each_command_line_reads_as_its_action(line, action):
    assert parse(line) == action


@pytest.mark.parametrize(("line", "says"), [
    ("fil main ADAUSDM buy 1 @ 1", "unknown command 'fil'; did you mean 'fill'?"),
    ("sell main ADAUSDM 1 @ 1", "unknown command 'sell'"),
    ("fill main BTCUSD buy 1 @ 1", "DeltaDeFi trades ADAUSDM, NIGHTUSDM, not 'BTCUSD'"),
    ("fill main ADAUSDM hold 1 @ 1", "'hold' is not buy or sell"),
    ("fill main ADAUSDM buy -1 @ 1", "quantity '-1' is not a positive decimal number"),
    ("fill main ADAUSDM buy 0 @ 1", "quantity '0' is not a positive decimal number"),
    ("fill main ADAUSDM buy 1e3 @ 1", "quantity '1e3'"),
    ("fill main ADAUSDM buy 1", "words missing"),
    ("fill desk vBTC_vUSDC buy 1 @ 1", "'desk' is not one of main, spot, perps"),
    ("fill spot vBTC;rm buy 1 @ 1", "'vBTC;rm' is not a symbol"),
    ("balance main USDC 120", "DeltaDeFi's assets are ada, usdm, night, not 'USDC'"),
    ("balance perps vBTC 1", "a perps account holds vUSDC only"),
    ("league main gld", "'gld' is not a league; did you mean 'gold'?"),
    ("league spot gold", "'spot' is not one of main"),
    ("position perps BTC-USD long", "words missing"),
    ("position spot BTC-USD long 1 @ 1", "'spot' is not one of perps"),
    ("liquidate perps BTC-USD @ 0", "mark price '0' is not a positive"),
    ("drop mian", "did you mean 'main'?"),
    ("drop main 99999", "at most 3600 seconds"),
    ("quit now", "too many words ('now')"),
])
def test_a_bad_line_is_one_line_saying_what_to_type(line, says):
    with pytest.raises(CommandError) as caught:
        parse(line)
    text = str(caught.value)
    assert says in text and "\n" not in text
    assert "(usage: " in text or "(help lists them)" in text


def test_the_parser_knows_what_the_simulated_deltadefi_serves(sim):
    assert set(DD_PAIRS) == set(sim.rest.trading_pairs)
    units = {a["symbol"].lower(): a["unit"] for a in sim.rest.market_config["assets"]}
    assert units == DD_UNITS


def _config(text: str, hook: str, state: Path | None = None) -> str:
    """The user's config: the sim's snippet as printed, plus a notifier (and, for an agent in
    this process, a state file in the test's folder instead of the working directory)."""
    if state is not None:
        text = "\n".join(f"state: {state}" if line.startswith("state:") else line
                         for line in text.splitlines())
    return f"{text}\nnotifiers:\n  hook: {hook}\n"


def test_each_command_reaches_a_real_alertd_as_the_alert_its_rule_makes(tmp_path, http_sink,
                                                                       rules_dir):
    with Simulator(valid_keys={SIM_KEY}) as sim:
        console = SimConsole(sim)
        cfg = write(tmp_path / "sim.yaml", _config(snippet(sim), http_sink.url,
                                                   tmp_path / "state.db"))
        with running(cfg, rules_dir):
            keys = console.keys
            assert sim.wait_ready(keys["main"]) and sim.wait_ready(keys["spot"], channels=4) \
                and sim.wait_ready(keys["perps"], channels=5)
            assert console.status() == ("main: connected (1 connects); desk/spot: connected, "
                                        "4 channels (1 connects); desk/perps: connected, "
                                        "5 channels (1 connects)")

            def do(line: str, title: str | None) -> str:
                out = console.apply(parse(line))
                assert "\n" not in out
                if title is not None:
                    assert wait_for(lambda: title in http_sink.titles(), 10), (
                        line, out, http_sink.titles())
                return out

            assert do("fill main ADAUSDM buy 500 @ 0.93", "fill main buy ADAUSDM 500 @ 0.93") \
                .endswith("(buy 500 ADAUSDM @ 0.93, filled) to 1 socket")
            do("fill spot vBTC_vUSDC sell 0.1 @ 65000", "fill desk sell vBTC_vUSDC 0.1 @ 65000")
            do("fill perps BTC-USD buy 0.2 @ 61000", "fill desk buy BTC-USD 0.2 @ 61000")
            do("balance main ada 450", "low main spot ada 450")
            do("balance spot vUSDC 400", "low desk spot vUSDC 400")
            assert "only recorded" in do("league main silver", None)
            do("league main gold", "league silver -> gold")
            do("position perps ETH-USD short 2 @ 3000", "position ETH-USD short")
            assert "(account value 3700, available 100)" in do("balance perps vUSDC 3700",
                                                               "margin high")
            do("liquidate perps BTC-USD", "liquidated long BTC-USD at 54600")
            assert do("drop main 2", "stream main spot disconnected") == (
                "dropped main: 1 socket cut without a close frame; DeltaDeFi refuses "
                "reconnects for 2 s")
            assert sim.wait_ready(keys["main"], connects=2, timeout=15)
            assert wait_for(lambda: "stream main spot connected" in http_sink.titles(), 10)
        assert sim.contract_violations == []
        assert "league bronze" not in " ".join(http_sink.titles())
        assert sum("fill " in t for t in http_sink.titles()) == 3


def test_a_fixed_port_is_the_one_the_snippet_names_and_a_taken_one_is_one_line(capsys):
    port = free_port()
    out = io.StringIO()
    assert run_sim(port=port, stdin=io.StringIO("status\nquit\nfill main\n"), out=out) == 0
    text = out.getvalue()
    assert f"    url: ws://127.0.0.1:{port}/accounts/stream\n" in text
    assert f"    url: ws://127.0.0.1:{port}/ws\n" in text
    assert text.endswith("main: not connected; desk/spot: not connected; desk/perps: not "
                         "connected\nalertd sim: stopped\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        assert run_sim(port=busy, stdin=io.StringIO(""), out=io.StringIO()) == 1
    err = capsys.readouterr().err
    assert err == (f"alertd sim: cannot listen on 127.0.0.1:{busy} (in use); pass --port N, "
                   "or --port 0 for any free port\n")


class SimProcess:
    """`alertd sim --port 0` as a child process: lines in on stdin, lines out read as they
    come, so that a test waits on what it prints and never on a fixed sleep."""

    def __init__(self, *extra: str) -> None:
        self.proc = subprocess.Popen(
            [*ALERTD, "sim", "--port", "0", *extra], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, bufsize=1)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def until(self, predicate, timeout: float = 20) -> str:
        """The next line printed that satisfies `predicate` (every line is kept in `seen`)."""
        deadline = time.monotonic() + timeout
        while (left := deadline - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            self.seen.append(line)
            if predicate(line):
                return line
        raise AssertionError(f"no such line in {timeout} s; printed:\n" + "\n".join(self.seen))

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def snippet(self) -> str:
        self.until(lambda line: line.startswith("# --- end"))
        start = max(i for i, line in enumerate(self.seen) if line.startswith("# --- alertd sim"))
        return "\n".join(self.seen[start:])

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


def test_alertd_sim_and_alertd_on_its_config_deliver_a_fill_to_a_webhook(tmp_path, http_sink):
    sim = SimProcess()
    agent = None
    try:
        cfg = write(tmp_path / "sim.yaml", _config(sim.snippet(), http_sink.url))
        rules = write(tmp_path / "rules" / "r.yaml", RULES).parent
        log = (tmp_path / "agent.log").open("w")
        agent = subprocess.Popen([*ALERTD, "--rules", str(rules), "--config", str(cfg)],
                                 cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=log)

        def connected() -> bool:
            sim.send("status")
            line = sim.until(lambda line: line.startswith("main: "))
            return line == ("main: connected (1 connects); desk/spot: connected, 4 channels "
                            "(1 connects); desk/perps: connected, 5 channels (1 connects)")

        assert wait_for(connected, 30, interval=0.2), (tmp_path / "agent.log").read_text()
        sim.send("fil main ADAUSDM buy 500 @ 0.93")
        assert sim.until(lambda line: line.startswith("error:")) == (
            "error: unknown command 'fil'; did you mean 'fill'? (help lists them)")
        assert sim.proc.poll() is None
        sim.send("fill main ADAUSDM buy 500 @ 0.93")
        assert sim.until(lambda line: line.startswith("pushed")).endswith(
            "(buy 500 ADAUSDM @ 0.93, filled) to 1 socket")
        assert wait_for(lambda: "fill main buy ADAUSDM 500 @ 0.93" in http_sink.titles(), 15), \
            (tmp_path / "agent.log").read_text()
        assert (tmp_path / "alertd-sim.db").is_file()  # the snippet's own state line
        sim.send("quit")
        assert sim.proc.wait(15) == 0
        assert sim.until(lambda line: line.startswith("alertd sim:")) == "alertd sim: stopped"
        assert "Traceback" not in sim.proc.stderr.read()
    finally:
        sim.kill()
        if agent is not None and agent.poll() is None:
            agent.kill()
            agent.wait(10)


def test_the_sim_stops_cleanly_at_the_end_of_its_input():
    done = subprocess.run([*ALERTD, "sim", "--port", "0"], input="status\n", text=True,
                          capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.endswith("desk/perps: not connected\nalertd sim: stopped\n")
    assert done.stderr == ""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_the_sim_stops_cleanly_on_sigterm_and_ctrl_c(tmp_path, signum):
    port_file = tmp_path / "port"
    sim = SimProcess("--port-file", str(port_file))
    try:
        sim.snippet()
        port = int(port_file.read_text())
        assert f"ws://127.0.0.1:{port}/ws" in "\n".join(sim.seen)
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
        sim.proc.send_signal(signum)
        assert sim.proc.wait(15) == 0
        assert sim.until(lambda line: line.startswith("alertd sim:")) == "alertd sim: stopped"
        assert sim.proc.stderr.read() == ""
        assert not port_file.exists()
    finally:
        sim.kill()


def test_the_command_is_in_the_cli_help():
    out = subprocess.run([*ALERTD, "sim", "--help"], capture_output=True, text=True,
                         timeout=30, env={**os.environ, "COLUMNS": "100"}).stdout
    assert "--port N" in out and "--port-file FILE" in out and "default 8799" in out


def test_the_readme_shows_the_config_the_sim_prints():
    from alertd.cli.sim import DEFAULT_PORT

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    with Simulator() as sim:
        printed = snippet(sim).replace(f":{sim.port}/", f":{DEFAULT_PORT}/")
    assert printed in readme and f"127.0.0.1:{DEFAULT_PORT}" in readme
