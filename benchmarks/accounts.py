"""Many accounts on one box: what one alertd process holds with N SoDEX accounts (spot and
perps each, so 2N sockets) and M DeltaDeFi accounts, against the simulated exchanges.

For each N it starts the simulator in this process, a webhook on 127.0.0.1, and alertd as a
child process (`alertd --config ... --rules ...`, so its memory, threads and CPU are its own,
read from /proc), then:

1. start-up: time until every stream is subscribed (as the simulator sees it) and
   `alertd status` shows every stream connected; REST calls served meanwhile;
2. idle: CPU % over `--idle` seconds with nothing pushed (pings, pongs, housekeeping);
3. rate: one fill per account every `--fill-every` seconds for `--rate-window` seconds; frames
   pushed per second, alerts that reached the webhook, CPU %;
4. cut: every socket cut at once (no close frame, as a network failure), one fill per
   account made while cut (only a catch-up can find it); time until every stream is
   subscribed again, what `alertd status` shows then (catch-ups still waiting their turn are
   `catch_up_queued`), time until every missed fill is alerted (recovered), REST calls served
   and the busiest second, new alerts beyond those (must be 0: the catch-ups restate fills
   already alerted).

The simulator pushes nothing per block, so a SoDEX socket idle for 60 s counts as silent and
is read over REST once (real SoDEX pushes every block): part of the idle REST figure.

config/load.py refuses more than MAX_ACCOUNTS (100) accounts in a file; above that the child
is started as `python -c` with the limit lifted in the process (`--no-lift` refuses instead),
everything else as `alertd` runs it.

Run: python benchmarks/accounts.py [--sodex 50,200] [--deltadefi 10]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from websockets.sync.server import serve

from alertd.config.load import MAX_ACCOUNTS
from alertd.exchanges.sodex.stream import CHANNELS as SODEX_CHANNELS
from alertd.sim.frames import dd_order, sx_trade
from alertd.sim.simulator import Simulator, deltadefi_key, sodex_key

CHANNELS = {market: len(names) for market, names in SODEX_CHANNELS.items()}
"""Subscriptions alertd makes per SoDEX socket."""
LIFT = ("import sys, alertd.config.load as load; load.MAX_ACCOUNTS = 10**6; "
        "from alertd.cli import main; sys.exit(main(sys.argv[1:]))")
RULES = """rules:
  - name: fill
    on: fill
    notify: [sink]
    group_wait: 0
    title: "fill"
"""
TICK = os.sysconf("SC_CLK_TCK")


class BenchSim(Simulator):
    """The simulator with a listen backlog of 1024: the default (128) drops SYNs when
    hundreds of sockets reconnect at once, a stand-in limit no exchange gateway has."""

    def start(self) -> BenchSim:
        self._server = serve(self._handle, self.host, 0, process_request=self._admit,
                             max_size=None, compression=None, backlog=1024)
        self._thread = threading.Thread(target=self._server.serve_forever, name="simulator",
                                        daemon=True)
        self._thread.start()
        return self


class Sink:
    """Apprise `json://` posts land here; only counted."""

    def __init__(self) -> None:
        self.posts = 0
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.posts += 1
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class Proc:
    """/proc readings of one process, sampled in the background for the highest thread
    count (VmHWM is the kernel's own peak)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.max_threads = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()

    def status(self) -> dict[str, str]:
        out = {}
        with contextlib.suppress(OSError):
            for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
                key, _, value = line.partition(":")
                out[key] = value.strip()
        return out

    def threads(self) -> int:
        return int(self.status().get("Threads", "0"))

    def peak_mb(self) -> float:
        return int(self.status().get("VmHWM", "0 kB").split()[0]) / 1024

    def rss_mb(self) -> float:
        return int(self.status().get("VmRSS", "0 kB").split()[0]) / 1024

    def cpu(self) -> float:
        """utime + stime, in seconds."""
        fields = Path(f"/proc/{self.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICK

    def _sample(self) -> None:
        while not self._stop.wait(0.25):
            self.max_threads = max(self.max_threads, self.threads())

    def close(self) -> None:
        self._stop.set()


class Rest:
    """Requests the simulator's REST side served, sampled for the busiest second."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self._marks: list[tuple[float, int]] = []

    def count(self) -> int:
        return len(self.sim.rest.requests)

    def mark(self) -> None:
        self._marks.append((time.monotonic(), self.count()))

    def busiest_second(self, since: float) -> int:
        marks = [m for m in self._marks if m[0] >= since]
        best = 0
        for i, (t, n) in enumerate(marks):
            later = [m for m in marks[i:] if m[0] <= t + 1.0]
            best = max(best, later[-1][1] - n)
        return best


def config_text(sim: Simulator, users: list[str], keys: list[str], sink: Sink,
                state: Path) -> str:
    lines = ["accounts:"]
    for i, user in enumerate(users):
        lines += [f"  - name: sx{i:03d}", "    exchange: sodex", f'    user: "{user}"',
                  f"    url: {sim.sodex_url}", "    markets: [spot, perps]"]
    for j, key in enumerate(keys):
        lines += [f"  - name: dd{j:03d}", "    exchange: deltadefi", f"    api_key: {key}",
                  f"    url: {sim.deltadefi_url}"]
    lines += ["notifiers:", f'  sink: {{urls: ["{sink.url}"], rate: none}}',
              f"state: {state}"]
    return "\n".join(lines) + "\n"


def stream_keys(users: list[str], keys: list[str]) -> dict[str, int]:
    """Each simulator stream key and the subscriptions it must hold to count as up."""
    out = {sodex_key(u, m): n for u in users for m, n in CHANNELS.items()}
    out.update({deltadefi_key(k): 0 for k in keys})
    return out


def all_up(sim: Simulator, want: dict[str, int], after: dict[str, int]) -> int:
    """How many streams have a live socket, fully subscribed, that connected after `after`."""
    with sim._cond:
        live: dict[str, int] = {}
        for c in sim._clients:
            live[c.key] = max(live.get(c.key, -1), len(c.subscribed))
        return sum(1 for key, n in want.items()
                   if live.get(key, -1) >= n and sim.connects[key] > after.get(key, 0))


def wait_up(sim: Simulator, rest: Rest, want: dict[str, int], after: dict[str, int],
            timeout: float, proc: subprocess.Popen[bytes]) -> tuple[float | None, int]:
    """Seconds until every stream is up again (None on timeout), and how many were."""
    start = time.monotonic()
    up = 0
    while time.monotonic() - start < timeout:
        rest.mark()
        up = all_up(sim, want, after)
        if up == len(want):
            return time.monotonic() - start, up
        if proc.poll() is not None:
            raise RuntimeError(f"alertd exited with {proc.returncode}")
        time.sleep(0.1)
    return None, up


def status_states(alertd: list[str], state: Path) -> Counter[str]:
    """How many streams `alertd status --state` shows in each state."""
    out = subprocess.run([*alertd, "status", "--state", str(state)], capture_output=True,
                         text=True, timeout=30).stdout
    rows = out.split("streams:", 1)[-1].split("outbox", 1)[0].splitlines()
    return Counter(r.split()[2] for r in rows if len(r.split()) > 2)


def phases(sim: Simulator, sink: Sink, rest: Rest, reader: Proc,
           proc: subprocess.Popen[bytes], want: dict[str, int], users: list[str],
           keys: list[str], alertd: list[str], state: Path, row: dict[str, Any],
           args: argparse.Namespace) -> None:
    """Start-up, idle, a steady rate, every socket cut: the figures go into `row`."""
    # 1. start-up
    t0 = time.monotonic()
    took, up = wait_up(sim, rest, want, {}, args.timeout, proc)
    row["startup_s"] = took
    row["startup_rest"] = rest.count()
    row["startup_rest_peak"] = rest.busiest_second(t0)
    if took is None:
        row["error"] = f"start-up: {up}/{len(want)} streams up after {args.timeout} s"
        return
    deadline = time.monotonic() + 20
    states = status_states(alertd, state)
    while states["connected"] < len(want) and time.monotonic() < deadline:
        time.sleep(1)
        states = status_states(alertd, state)
    row["status"] = ", ".join(f"{n} {s}" for s, n in states.most_common())
    row["rss_connected_mb"] = reader.rss_mb()

    # 2. idle
    cpu, rest_before, t = reader.cpu(), rest.count(), time.monotonic()
    time.sleep(args.idle)
    row["idle_cpu_pct"] = 100 * (reader.cpu() - cpu) / (time.monotonic() - t)
    row["idle_rest"] = rest.count() - rest_before
    row["threads"] = reader.threads()

    # 3. a steady rate of fills
    accounts = [("sx", u) for u in users] + [("dd", k) for k in keys]
    gap = args.fill_every / len(accounts)
    posts_before, pushed, k = sink.posts, 0, 0
    cpu, t = reader.cpu(), time.monotonic()
    while time.monotonic() - t < args.rate_window:
        time.sleep(max(0.0, t + k * gap - time.monotonic()))
        kind, who = accounts[k % len(accounts)]
        if kind == "sx":
            pushed += sim.push_sodex(who, "spot", "accountTrade",
                                     [sx_trade(10_000 + k, "0.01")])
        else:
            pushed += sim.push_deltadefi(who, dd_order(
                f"o-{k}", "closed", [(f"r-{k}", "2000")], "2000"))
        k += 1
    spent = time.monotonic() - t
    row["rate_cpu_pct"] = 100 * (reader.cpu() - cpu) / spent
    row["rate_frames_s"] = pushed / spent
    row["rate_pushed"] = pushed
    drain = time.monotonic() + 15
    while sink.posts - posts_before < pushed and time.monotonic() < drain:
        time.sleep(0.2)
    row["rate_alerts"] = sink.posts - posts_before

    # 4. every connection cut at once
    with sim._cond:
        after = dict(sim.connects)
    posts_before, rest_before = sink.posts, rest.count()
    cut = time.monotonic()
    sim.drop_all()
    for n, (kind, who) in enumerate(accounts):  # while cut: only a catch-up can tell
        if kind == "sx":
            sim.push_sodex(who, "spot", "accountTrade", [sx_trade(900_000 + n, "0.02")],
                           live=False)
        else:
            sim.push_deltadefi(who, dd_order(f"cut-{n}", "closed", [(f"cut-r-{n}", "2000")],
                                             "2000"), live=False)
    took, up = wait_up(sim, rest, want, after, args.timeout, proc)
    row["recover_s"] = took
    row["recover_up"] = f"{up}/{len(want)}"
    row["recover_rest"] = rest.count() - rest_before
    row["recover_rest_peak"] = rest.busiest_second(cut)
    if took is not None:
        states = status_states(alertd, state)
        row["recover_status"] = ", ".join(f"{n} {s}" for s, n in states.most_common())
    deadline = cut + args.catch_up_wait
    while sink.posts - posts_before < len(accounts) and time.monotonic() < deadline:
        rest.mark()
        time.sleep(0.2)
    row["cut_fills"] = len(accounts)
    row["cut_alerted"] = sink.posts - posts_before
    row["cut_alerted_s"] = time.monotonic() - cut
    row["cut_rest"] = rest.count() - rest_before
    row["cut_rest_peak"] = rest.busiest_second(cut)
    time.sleep(3)  # catch-ups that restate fills already alerted: none may alert again
    row["cut_extra_alerts"] = sink.posts - posts_before - len(accounts)
    row["max_threads"] = reader.max_threads
    row["peak_rss_mb"] = reader.peak_mb()
    row["rss_end_mb"] = reader.rss_mb()


def run_one(n_sodex: int, n_dd: int, args: argparse.Namespace) -> dict[str, Any]:
    users = [f"0x{0xbe00 + i:040x}" for i in range(n_sodex)]
    keys = [f"bench-dd-key-{j:04d}" for j in range(n_dd)]
    want = stream_keys(users, keys)
    bindir = Path(sys.executable).parent
    alertd = [str(bindir / "alertd")]
    lifted = n_sodex + n_dd > MAX_ACCOUNTS
    if lifted and args.no_lift:
        raise SystemExit(f"{n_sodex + n_dd} accounts: over MAX_ACCOUNTS ({MAX_ACCOUNTS})")
    row: dict[str, Any] = {"sodex": n_sodex, "deltadefi": n_dd, "streams": len(want),
                           "lifted": lifted}
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    with tempfile.TemporaryDirectory() as tmp, BenchSim(valid_keys=set(keys)) as sim:
        sink = Sink()
        state = Path(tmp) / "state.db"
        config = Path(tmp) / "alertd.yaml"
        config.write_text(config_text(sim, users, keys, sink, state))
        config.chmod(0o600)
        (Path(tmp) / "rules").mkdir()
        (Path(tmp) / "rules" / "r.yaml").write_text(RULES)
        child = ([sys.executable, "-c", LIFT] if lifted else alertd) + [
            "--rules", str(Path(tmp) / "rules"), "--config", str(config)]
        log = Path(tmp) / "alertd.log"
        rest = Rest(sim)
        with log.open("w") as err:
            proc = subprocess.Popen(child, stdout=subprocess.DEVNULL, stderr=err, env=env)
        reader = Proc(proc.pid)
        try:
            phases(sim, sink, rest, reader, proc, want, users, keys, alertd, state, row, args)
        except RuntimeError as exc:
            row["error"] = str(exc)
        finally:
            reader.close()
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)
            sink.close()
            text = log.read_text(errors="replace")
            row["log_warnings"] = text.count("WARNING")
            row["log_errors"] = text.count("ERROR")
            kinds = Counter(re.sub(r"\d+(\.\d+)?", "#", ln.split(": ", 1)[-1])
                            for ln in text.splitlines() if "WARNING" in ln or "ERROR" in ln)
            row["log_tail"] = [f"{n} x {kind}" for kind, n in kinds.most_common(6)]
            if proc.returncode not in (0, -15):
                row["log_tail"] += text.splitlines()[-15:]
    return row


def fmt(value: Any, spec: str = "") -> str:
    if value is None:
        return "timeout"
    return format(value, spec) if spec else str(value)


def table(rows: list[dict[str, Any]]) -> str:
    cols = [f"{r['sodex']} SoDEX + {r['deltadefi']} DeltaDeFi ({r['streams']} sockets)"
            + (" *" if r["lifted"] else "") for r in rows]
    lines = ["| | " + " | ".join(cols) + " |", "|---|" + "---|" * len(rows)]

    def line(label: str, cell: Any) -> None:
        lines.append(f"| {label} | " + " | ".join(cell(r) for r in rows) + " |")

    line("start-up: all subscribed", lambda r: f"{fmt(r.get('startup_s'), '.1f')} s, "
         f"{r.get('startup_rest', '?')} REST calls (busiest second {r.get('startup_rest_peak')})")
    line("`alertd status` streams", lambda r: str(r.get("status", "?")))
    line("threads (connected / most seen)", lambda r: f"{r.get('threads', '?')} / "
         f"{r.get('max_threads', '?')}")
    line("RSS connected / peak (VmHWM)", lambda r: f"{fmt(r.get('rss_connected_mb'), '.0f')} / "
         f"{fmt(r.get('peak_rss_mb'), '.0f')} MB")
    line("idle CPU", lambda r: f"{fmt(r.get('idle_cpu_pct'), '.1f')} % "
         f"({r.get('idle_rest', '?')} REST calls)")
    line("1 fill/account/10 s", lambda r: f"{fmt(r.get('rate_frames_s'), '.1f')} frames/s, "
         f"CPU {fmt(r.get('rate_cpu_pct'), '.1f')} %, "
         f"{r.get('rate_alerts', '?')}/{r.get('rate_pushed', '?')} alerted")
    line("every socket cut: all back", lambda r: f"{fmt(r.get('recover_s'), '.1f')} s "
         f"({r.get('recover_up', '?')})")
    line("  `alertd status` then", lambda r: str(r.get("recover_status", "?")))
    line("  REST calls in recovery", lambda r: f"{r.get('recover_rest', '?')} "
         f"(busiest second {r.get('recover_rest_peak', '?')})")
    line("  fills made while cut, alerted", lambda r: f"{r.get('cut_alerted', '?')}/"
         f"{r.get('cut_fills', '?')} after {fmt(r.get('cut_alerted_s'), '.0f')} s "
         f"({r.get('cut_rest', '?')} REST calls, busiest second {r.get('cut_rest_peak')})")
    line("  alerts beyond those (repeats)", lambda r: str(max(0, r.get("cut_extra_alerts", 0))))
    line("log WARNING / ERROR lines", lambda r: f"{r.get('log_warnings')} / "
         f"{r.get('log_errors')}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sodex", default="50,200", help="SoDEX account counts, comma "
                        "separated (each watches spot and perps)")
    parser.add_argument("--deltadefi", type=int, default=10, help="DeltaDeFi accounts")
    parser.add_argument("--idle", type=float, default=20.0, help="idle window, s")
    parser.add_argument("--rate-window", type=float, default=30.0, help="fill window, s")
    parser.add_argument("--fill-every", type=float, default=10.0,
                        help="seconds between two fills of one account")
    parser.add_argument("--timeout", type=float, default=240.0,
                        help="bound on each wait for the streams, s (the first catch-ups come "
                        "before the sockets, ~0.45 s per SoDEX account at 10 calls/s)")
    parser.add_argument("--catch-up-wait", type=float, default=240.0,
                        help="after the cut, how long fills made meanwhile may take, s")
    parser.add_argument("--no-lift", action="store_true",
                        help=f"refuse sizes over MAX_ACCOUNTS ({MAX_ACCOUNTS})")
    parser.add_argument("--json", action="store_true", help="also print the rows as JSON")
    args = parser.parse_args()
    rows = []
    for n in (int(x) for x in args.sodex.split(",")):
        print(f"-- {n} SoDEX + {args.deltadefi} DeltaDeFi accounts", file=sys.stderr)
        rows.append(run_one(n, args.deltadefi, args))
        if rows[-1].get("error"):
            print(rows[-1]["error"], file=sys.stderr)
        for ln in rows[-1].get("log_tail", []):
            print(f"   log: {ln}", file=sys.stderr)
    print(table(rows))
    if any(r["lifted"] for r in rows):
        print(f"* over config/load.py MAX_ACCOUNTS ({MAX_ACCOUNTS}): run with the limit "
              "lifted in the process")
    if args.json:
        print(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
