"""What alert latency cannot go below on this machine: an fsync of 4 KB (a commit holding an
alert), a bare HTTP POST on a new connection, and an Apprise `json://` post through alertd's
notifier, each to a real server on 127.0.0.1, 300 times. Run: python benchmarks/floors.py
"""

from __future__ import annotations

import http.client
import os
import statistics
import tempfile
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from alertd.delivery.notify import build_notifiers

TIMES = 300


class Handler(BaseHTTPRequestHandler):
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args: object) -> None:
        pass


def timed(fn: Callable[[], object]) -> str:
    took = []
    for _ in range(TIMES):
        start = time.perf_counter()
        fn()
        took.append(time.perf_counter() - start)
    took.sort()
    return (f"p50 {statistics.median(took) * 1000:.2f} ms, "
            f"p99 {took[int(len(took) * 0.99)] * 1000:.2f} ms")


def main() -> int:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    port = server.server_address[1]
    threading.Thread(target=server.serve_forever, daemon=True).start()
    with tempfile.NamedTemporaryFile(dir=tempfile.gettempdir()) as file:
        def fsync() -> None:
            file.write(b"x" * 4096)
            file.flush()
            os.fsync(file.fileno())

        print(f"fsync of 4 KB:                      {timed(fsync)}")

    def post() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port)
        conn.request("POST", "/", body=b'{"title": "x"}',
                     headers={"Content-Type": "application/json"})
        conn.getresponse().read()
        conn.close()

    print(f"bare POST on a new connection:      {timed(post)}")
    notifier = build_notifiers({"hook": (f"json://127.0.0.1:{port}/",)}, "<floors>")["hook"]
    print(f"Apprise json:// post (alertd's):    "
          f"{timed(lambda: notifier.send('title', 'body', 'info'))}")
    server.shutdown()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
