"""Frames per second over a loopback WebSocket: the exchanges' example client (as documented,
and with `skip_utf8_validation`), a bare receive+parse loop, and alertd end to end with 100
rules, its clock stopped when the last alert reached a real local webhook; then alertd's
frame → webhook latency at a steady 200 frames/s, and its peak memory over 100k orders.

The server is a separate process that completes the WebSocket handshake and then writes
pre-encoded 1 KB DeltaDeFi order frames as fast as the socket takes them (or at a set pace),
so the figures are the clients' own. Run: python benchmarks/throughput.py [--frames N]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import websocket

from alertd.config.load import Account, Config
from alertd.delivery.notify import build_notifiers
from alertd.ingest.stream import StreamSettings
from alertd.rules.load import load_rules
from alertd.runtime.agent import Agent
from alertd.sim.simulator import raw_handshake

SYMBOLS = [f"SYM{i}USDM" for i in range(20)]
KEY = "bench-key-0000"


def order_frames(n: int) -> list[bytes]:
    """n order_info frames (~1 KB): orders opening, filling partly, then completely."""
    frames: list[bytes] = []
    i = 0
    while len(frames) < n:
        oid, sym = f"ord-{i:08d}-550e8400-e29b-41d4-a716", SYMBOLS[i % len(SYMBOLS)]
        records: list[dict] = []
        for step, status in enumerate(("open", "partially_filled", "closed")):
            if step:
                records.append({"id": f"{oid}-x{step}", "order_id": oid, "account_id": "acc-1",
                                "execution_price": "0.9312", "filled_base_qty": "500",
                                "filled_quote_qty": "465.6", "commission_unit": "lovelace",
                                "commission": "0.23", "role": "maker",
                                "counter_party_order_id": "cp-1",
                                "created_at": f"2026-11-22T10:00:0{step}Z"})
            executed = str(500 * step)
            frames.append(json.dumps({"type": "Account", "sub_type": "order_info", "order": {
                "id": oid, "account_id": "550e8400-e29b-41d4-a716-446655440001",
                "status": status, "symbol": sym, "base_qty": "1000", "quote_qty": "931.2",
                "side": "buy", "price": "0.9312", "type": "limit", "locked_base_qty": "1000",
                "locked_quote_qty": "931.2", "executed_base_qty": executed,
                "executed_quote_qty": "0", "ob_open_order_base_qty": "1000",
                "commission_unit": "lovelace", "commission": "0", "commission_rate_bp": 10,
                "executed_price": "0.9312", "created_at": "2026-11-22T10:00:00Z",
                "updated_at": "2026-11-22T10:00:00Z",
                "order_execution_records": list(records)}}).encode())
        i += 1
    return frames[:n]


def ws_frame(payload: bytes, opcode: int = 0x1) -> bytes:
    n = len(payload)
    if n < 126:
        head = bytes([0x80 | opcode, n])
    elif n < 65536:
        head = bytes([0x80 | opcode, 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x80 | opcode, 127]) + n.to_bytes(8, "big")
    return head + payload


def serve(sock: socket.socket, blobs: dict[str, bytes],
          paced: dict[str, tuple[list[bytes], float, str]]) -> None:
    """Per connection: handshake, then the blob for its path, then a close frame. A paced
    path sends its frames at a set rate and writes each one's send time (monotonic, which
    every process on the machine shares) to a file."""
    while True:
        conn, _ = sock.accept()
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # Nagle would add ~20 ms
        name = raw_handshake(conn).split("?")[0].rsplit("/", 1)[-1]
        blob = blobs.get(name, b"")
        try:
            if name in paced:
                frames, rate, out = paced[name]
                sent, start = [], time.monotonic()
                for k, frame in enumerate(frames):
                    time.sleep(max(0.0, start + k / rate - time.monotonic()))
                    sent.append(time.monotonic())
                    conn.sendall(frame)
                Path(out).write_text(json.dumps(sent))
                time.sleep(1.0)
            conn.sendall(blob + ws_frame(b"\x03\xe8", 0x8))
            conn.settimeout(5)
            while conn.recv(65536):
                pass
        except OSError:
            pass
        conn.close()


def start_server(frames: list[bytes], counts: dict[str, int],
                 paced: dict[str, tuple[int, float, str]] | None = None,
                 others: dict[str, list[bytes]] | None = None,
                 ) -> tuple[str, multiprocessing.Process]:
    encoded = [ws_frame(f) for f in frames]
    blobs = {name: b"".join(encoded[:n]) for name, n in counts.items()}
    blobs.update({name: b"".join(map(ws_frame, more)) for name, more in (others or {}).items()})
    pace = {name: (encoded[:n], rate, out) for name, (n, rate, out) in (paced or {}).items()}
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    proc = multiprocessing.Process(target=serve, args=(sock, blobs, pace), daemon=True)
    proc.start()
    return f"ws://127.0.0.1:{sock.getsockname()[1]}", proc


def example_client(url: str, path: str = "a", skip_utf8: bool = False) -> tuple[int, float]:
    """The exchanges' documented Python example: WebSocketApp, json.loads, print; with
    `skip_utf8`, given the one flag that makes websocket-client fast, so nobody wins by it."""
    count, start, end = 0, 0.0, 0.0
    devnull = open("/dev/null", "w")  # noqa: SIM115

    def on_message(ws, message):
        nonlocal count
        count += 1
        event = json.loads(message)
        if event.get("sub_type") == "order_info":
            print(f"Order update: {event['order']}", file=devnull)
        elif event.get("sub_type") == "dlta_points":
            print(f"Points earned: {event['dlta_points']['delta']}", file=devnull)
        elif event.get("sub_type") == "balance":
            print(f"Balance update: {event['balance']}", file=devnull)
        else:
            print(f"Event: {event}", file=devnull)

    def on_open(ws):
        nonlocal start
        start = time.perf_counter()
        print("Connected to account stream", file=devnull)

    def on_close(ws, code, msg):
        nonlocal end
        end = time.perf_counter()

    app = websocket.WebSocketApp(f"{url}/stream/{path}", on_open=on_open, on_message=on_message,
                                 on_close=on_close,
                                 on_error=lambda ws, e: print(f"Error: {e}", file=devnull))
    app.run_forever(skip_utf8_validation=skip_utf8)
    devnull.close()
    return count, end - start


def bare_loop(url: str) -> tuple[int, float]:
    """The fastest plain reader on the same transport settings alertd uses."""
    ws = websocket.create_connection(f"{url}/stream/b", skip_utf8_validation=True)
    count, start = 0, time.perf_counter()
    try:
        while True:
            data = ws.recv()
            if not data:
                break
            json.loads(data)
            count += 1
    except websocket.WebSocketConnectionClosedException:
        pass
    return count, time.perf_counter() - start


def bench_rules(folder: Path, matching: bool = True) -> Path:
    """100 rules across kinds; with `matching`, a few of them match (10 % of frames alert)."""
    lines = ["rules:"]
    few = 2 if matching else 0
    for k in range(40):
        threshold = 200 if k < few else 10**9
        lines += [f"  - name: fill-{k}", "    on: fill", "    notify: [sink]",
                  f"    when: {{symbol: {SYMBOLS[k % 20]}, quote_qty: {{gte: {threshold}}}}}",
                  '    title: "{side} {symbol} {qty} @ {price}"']
    for k in range(40):
        lines += [f"  - name: order-{k}", "    on: order", "    notify: [sink]",
                  f"    when: {{symbol: {SYMBOLS[k % 20]}, status: {{in: [filled, cancelled]}},"
                  f" qty: {{gte: {1000 if k < few else 10**9}}}}}"]
    for k in range(10):
        lines += [f"  - name: balance-{k}", "    on: balance", "    notify: [sink]",
                  f"    when: {{asset: a{k}, free: {{lt: 100}}}}"]
    for k in range(10):
        lines += [f"  - name: league-{k}", "    on: league", "    notify: [sink]",
                  f"    when: {{league: l{k}}}"]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "bench.yaml").write_text("\n".join(lines) + "\n")
    return folder


class Webhook:
    """A real HTTP server on 127.0.0.1: Apprise `json://` posts land here (each one's arrival
    time and title kept), and the REST catch-up's GETs are answered with empty lists."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str]] = []
        hook = self

        class Handler(BaseHTTPRequestHandler):
            disable_nagle_algorithm = True

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                hook.arrivals.append((time.monotonic(), json.loads(body).get("title", "")))
                self._reply(b"{}")

            def do_GET(self) -> None:
                self._reply(b"[]")

            def _reply(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()


def agent_for(url: str, path: str, tmp: str, rules_dir: Path, hook: str) -> Agent:
    """An Agent reading `path` on the server, posting to the webhook at `hook` (host:port)."""
    rules = load_rules(rules_dir, ["sink"], ["bench"])
    config = Config(path=Path("<bench>"), state_path=Path(tmp) / "state.db",
                    notifiers={"sink": (f"json://{hook}/",)},
                    accounts=(Account("bench", "deltadefi", f"{url}/stream/{path}",
                                      api_key=KEY, rest_url=f"http://{hook}"),))
    notifiers = build_notifiers(config.notifiers, "<bench>")
    return Agent(config, rules, notifiers, settings=StreamSettings(backoff_first=30, tick=0.05))


def alertd_end_to_end(url: str, n: int, matching: bool = True,
                      path: str | None = None) -> tuple[int, float, tuple[int, int]]:
    """Clock from start to the last alert delivered to the webhook (or, with no alert, to
    the last frame processed)."""
    hook = Webhook()
    with tempfile.TemporaryDirectory() as tmp:
        rules_dir = bench_rules(Path(tmp) / "rules", matching)
        agent = agent_for(url, path or ("c" if matching else "d"), tmp, rules_dir, hook.url)
        assert len(agent.rules) == 100
        start = time.perf_counter()
        agent.start()
        p = agent.pipeline
        while (p.frames + sum(p.drops.counts.values()) < n or len(hook.arrivals) < p.messages
               or agent.core.call(p.groups.count)) and time.perf_counter() - start < 600:
            time.sleep(0.005)
        elapsed = time.perf_counter() - start
        frames, alerts = p.frames, (p.alerts, len(hook.arrivals))
        agent.stop(timeout=10)
    hook.close()
    return frames, elapsed, alerts


def latency(url: str, frames: list[bytes], sent_file: str) -> list[float]:
    """Frame → webhook milliseconds for every frame that carries a new fill, at the pace the
    server keeps (one rule: every fill, titled with its trade id)."""
    newest = {}
    for k, raw in enumerate(frames):
        records = json.loads(raw)["order"]["order_execution_records"]
        if records:
            newest[records[-1]["id"]] = k
    hook = Webhook()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "rules"
        folder.mkdir()
        (folder / "r.yaml").write_text(
            'rules:\n  - name: fill\n    on: fill\n    notify: [sink]\n    group_wait: 0\n'
            '    title: "{trade_id}"\n')
        agent = agent_for(url, "p", tmp, folder, hook.url)
        agent.start()
        deadline = time.monotonic() + len(frames) / 100 + 60
        while len(hook.arrivals) < len(newest) and time.monotonic() < deadline:
            time.sleep(0.05)
        while not Path(sent_file).exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        agent.stop(timeout=10)
    hook.close()
    sent = json.loads(Path(sent_file).read_text())
    return [(at - sent[newest[title]]) * 1000 for at, title in hook.arrivals if title in newest]


def memory_of_alertd(url: str, hook_url: str, marks: list[int], path: str = "m",
                     count: str = "SELECT COUNT(*) FROM orders") -> list[tuple[int, float]]:
    """The real `alertd` command in a process of its own reading `path` (no alert), its peak
    RSS (VmHWM) read from /proc once the state file holds each mark's rows (`count`: orders,
    or the subjects with a level); so the figure is the daemon's own, nothing of this
    script's."""
    with tempfile.TemporaryDirectory() as tmp:
        rules_dir = bench_rules(Path(tmp) / "rules", matching=False)
        state = Path(tmp) / "state.db"
        config = Path(tmp) / "alertd.yaml"
        config.write_text(json.dumps({
            "accounts": [{"name": "bench", "exchange": "deltadefi", "api_key": KEY,
                          "url": f"{url}/stream/{path}", "rest_url": f"http://{hook_url}"}],
            "notifiers": {"sink": f"json://{hook_url}/"}, "state": str(state)}))
        config.chmod(0o600)
        proc = subprocess.Popen([sys.executable, "-m", "alertd", "--rules", str(rules_dir),
                                 "--config", str(config)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)
        peaks: list[tuple[int, float]] = []
        todo, start = list(marks), time.monotonic()
        try:
            while todo and time.monotonic() - start < 900 and proc.poll() is None:
                if _rows(state, count) >= todo[0]:
                    peaks.append((todo.pop(0), _vm_hwm(proc.pid)))
                time.sleep(0.2)
        finally:
            proc.terminate()
            proc.wait(30)
    return peaks


def balance_frames(n: int) -> list[bytes]:
    """n DeltaDeFi balance snapshots, each naming an asset never seen: n distinct subjects."""
    return [json.dumps({"type": "Account", "sub_type": "balance", "balance": [
        {"asset": f"tok{k}", "asset_unit": f"{k:056x}", "free": 10 + k % 7, "locked": 0}]}
        ).encode() for k in range(n)]


def _rows(state: Path, count: str) -> int:
    try:
        with sqlite3.connect(f"{state.as_uri()}?mode=ro", uri=True, timeout=1) as db:
            return db.execute(count).fetchone()[0]
    except sqlite3.Error:
        return 0


def _vm_hwm(pid: int | str = "self") -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30000, help="frames for (b) and (c)")
    parser.add_argument("--example-frames", type=int, default=6000, help="frames for (a)")
    parser.add_argument("--paced", type=int, default=2000, help="frames sent at 200/s")
    parser.add_argument("--orders", type=int, default=100_000, help="orders for the RSS run")
    args = parser.parse_args()
    memory_frames = 3 * args.orders
    frames = order_frames(max(args.frames, args.example_frames, args.paced, memory_frames))
    size = sum(len(f) for f in frames[: args.frames]) / args.frames
    sent_file = tempfile.mktemp(prefix="alertd-bench-sent-")
    fresh = frames[0::3][:args.frames]  # the new-orders mix: each frame opens a new order
    url, server = start_server(
        frames, {"a": args.example_frames, "a2": args.example_frames, "b": args.frames,
                 "c": args.frames, "d": args.frames, "m": memory_frames},
        paced={"p": (args.paced, 200.0, sent_file)},
        others={"n": fresh, "s": balance_frames(args.orders)})
    del frames[max(args.paced, args.frames):]
    try:
        na, ta = example_client(url)
        na2, ta2 = example_client(url, "a2", skip_utf8=True)
        nb, tb = bare_loop(url)
        nc, tc, alerts = alertd_end_to_end(url, args.frames)
        nd, td, _ = alertd_end_to_end(url, args.frames, matching=False)
        nn, tn, _ = alertd_end_to_end(url, len(fresh), matching=False, path="n")
        lat = sorted(latency(url, frames[: args.paced], sent_file))
        hook = Webhook()
        marks = [args.orders // 4, args.orders // 2, args.orders]
        peaks = memory_of_alertd(url, hook.url, marks)
        subjects = memory_of_alertd(url, hook.url, marks, "s",
                                    "SELECT COUNT(*) FROM levels WHERE subject LIKE '%tok%'")
        hook.close()
    finally:
        server.terminate()
    a, a2, b, c, d, new = na / ta, na2 / ta2, nb / tb, nc / tc, nd / td, nn / tn
    out = io.StringIO()
    print(f"frames: {size:.0f} bytes on average (DeltaDeFi order_info), loopback, "
          f"{multiprocessing.cpu_count()} cores, Python {sys.version.split()[0]}", file=out)
    print(f"(a)  example client (WebSocketApp + json.loads + print): {a:9.0f} frames/s "
          f"({na} frames)", file=out)
    print(f"(a') the same with skip_utf8_validation=True:            {a2:9.0f} frames/s "
          f"({na2} frames)", file=out)
    print(f"(b)  bare receive + json.loads loop:                     {b:9.0f} frames/s "
          f"({nb} frames)", file=out)
    print(f"(c)  alertd, 100 rules, state + outbox, clock stopped at the last webhook delivery: "
          f"{c:9.0f} frames/s ({nc} frames, {alerts[0]} alerts in {alerts[1]} messages after "
          "grouping)", file=out)
    print(f"     same 100 rules, none matching (no alert, no fsync):  {d:9.0f} frames/s "
          f"({nd} frames)", file=out)
    print(f"     new orders only (each frame a new order), no alert:  {new:9.0f} frames/s "
          f"({nn} frames)", file=out)
    print(f"ratios: c/a = {c / a:.1f}x, c/a' = {c / a2:.1f}x (target >= 2), c/b = {c / b:.2f}x "
          f"(target >= 0.5); without alerts d/a' = {d / a2:.1f}x, d/b = {d / b:.2f}x; new orders "
          f"n/b = {new / b:.2f}x (target >= 0.5)", file=out)
    if lat:
        p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
        print(f"latency frame -> webhook at 200 frames/s ({len(lat)} alerts): "
              f"p50 {statistics.median(lat):.1f} ms, p99 {p99:.1f} ms, max {lat[-1]:.1f} ms "
              f"(target p99 < 5 ms; group_wait: 0, since a partial fill waits up to its "
              f"group_wait by design)", file=out)
    print("peak RSS (VmHWM) of a fresh alertd process: " + ", ".join(
        f"{mb:.0f} MB after {n:,} orders" for n, mb in peaks)
        + " (target < 60 MB, flat in finished orders)", file=out)
    print("  and over distinct subjects (a balance of a new asset a frame): " + ", ".join(
        f"{mb:.0f} MB after {n:,}" for n, mb in subjects) + " (flat in subjects)", file=out)
    print(out.getvalue(), end="")
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    raise SystemExit(main())
