"""Frames per second over a loopback WebSocket: the exchanges' example client, a bare
receive+parse loop, and alertd end to end with 100 rules, all in one run.

The server is a separate process that completes the WebSocket handshake and then writes
pre-encoded 1 KB DeltaDeFi order frames as fast as the socket takes them, so the figures are
the clients' own. Run: python benchmarks/throughput.py [--frames N]
"""

from __future__ import annotations

import argparse
import io
import json
import multiprocessing
import socket
import sys
import tempfile
import threading
import time
from pathlib import Path

import websocket

from alertd.agent import Agent
from alertd.config import Account, Config
from alertd.rules import load_rules
from alertd.simulator import raw_handshake
from alertd.streams import StreamSettings

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


def serve(sock: socket.socket, blobs: dict[str, bytes]) -> None:
    """Per connection: handshake, then the blob for its path (?n=...), then a close frame."""
    while True:
        conn, _ = sock.accept()
        path = raw_handshake(conn)
        blob = blobs.get(path.split("?")[0].rsplit("/", 1)[-1], b"")
        try:
            conn.sendall(blob + ws_frame(b"\x03\xe8", 0x8))
            conn.settimeout(5)
            while conn.recv(65536):
                pass
        except OSError:
            pass
        conn.close()


def start_server(frames: list[bytes],
                 counts: dict[str, int]) -> tuple[str, multiprocessing.Process]:
    encoded = [ws_frame(f) for f in frames]
    blobs = {name: b"".join(encoded[:n]) for name, n in counts.items()}
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    proc = multiprocessing.Process(target=serve, args=(sock, blobs), daemon=True)
    proc.start()
    return f"ws://127.0.0.1:{sock.getsockname()[1]}", proc


def example_client(url: str) -> tuple[int, float]:
    """The exchanges' documented Python example: WebSocketApp, json.loads, print."""
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

    app = websocket.WebSocketApp(f"{url}/stream/a", on_open=on_open, on_message=on_message,
                                 on_close=on_close,
                                 on_error=lambda ws, e: print(f"Error: {e}", file=devnull))
    app.run_forever()
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


class CountingNotifier:
    """Delivery without I/O, so the figure is the agent's, not a chat service's."""

    name = "sink"

    def __init__(self) -> None:
        self.sent = 0

    def send(self, title: str, body: str, severity: str) -> None:
        self.sent += 1


def alertd_end_to_end(url: str, n: int, matching: bool = True) -> tuple[int, float, int]:
    with tempfile.TemporaryDirectory() as tmp:
        rules = load_rules(bench_rules(Path(tmp) / "rules", matching), ["sink"], ["bench"])
        assert len(rules) == 100
        path = "c" if matching else "d"
        config = Config(path=Path("<bench>"), state_path=Path(tmp) / "state.db",
                        notifiers={"sink": ("bench",)},
                        accounts=(Account("bench", "deltadefi", f"{url}/stream/{path}",
                                          api_key=KEY),))
        sink = CountingNotifier()
        agent = Agent(config, rules, {"sink": sink},
                      settings=StreamSettings(backoff_first=30, tick=0.05))
        start = time.perf_counter()
        agent.start()
        while agent.pipeline.frames + sum(agent.pipeline.drops.counts.values()) < n:
            time.sleep(0.02)
            if time.perf_counter() - start > 300:
                break
        elapsed = time.perf_counter() - start
        frames, alerts = agent.pipeline.frames, agent.pipeline.alerts
        agent.stop(timeout=10)
        return frames, elapsed, alerts


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=30000, help="frames for (b) and (c)")
    parser.add_argument("--example-frames", type=int, default=6000, help="frames for (a)")
    args = parser.parse_args()
    frames = order_frames(max(args.frames, args.example_frames))
    size = sum(len(f) for f in frames[: args.frames]) / args.frames
    url, server = start_server(frames, {"a": args.example_frames, "b": args.frames,
                                        "c": args.frames, "d": args.frames})
    try:
        na, ta = example_client(url)
        nb, tb = bare_loop(url)
        nc, tc, alerts = alertd_end_to_end(url, args.frames)
        nd, td, _ = alertd_end_to_end(url, args.frames, matching=False)
    finally:
        server.terminate()
    a, b, c, d = na / ta, nb / tb, nc / tc, nd / td
    out = io.StringIO()
    print(f"frames: {size:.0f} bytes on average (DeltaDeFi order_info), loopback, "
          f"{multiprocessing.cpu_count()} cores, Python {sys.version.split()[0]}", file=out)
    print(f"(a) example client (WebSocketApp + json.loads + print): {a:9.0f} frames/s "
          f"({na} frames)", file=out)
    print(f"(b) bare receive + json.loads loop:                     {b:9.0f} frames/s "
          f"({nb} frames)", file=out)
    print(f"(c) alertd end to end, 100 rules, state + outbox:       {c:9.0f} frames/s "
          f"({nc} frames, {alerts} alerts)", file=out)
    print(f"    same 100 rules, none matching (no alert, no fsync):     {d:9.0f} frames/s "
          f"({nd} frames)", file=out)
    print(f"ratios: c/a = {c / a:.1f}x (target >= 4), c/b = {c / b:.2f}x (target >= 0.5); "
          f"without alerts {d / a:.1f}x and {d / b:.2f}x", file=out)
    print(out.getvalue(), end="")
    return 0


if __name__ == "__main__":
    threading.current_thread().name = "bench"
    raise SystemExit(main())
