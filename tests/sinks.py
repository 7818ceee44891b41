"""Real receivers on 127.0.0.1 for what alertd sends: an HTTP endpoint and an SMTP server."""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout: float = 10.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return predicate()


class HttpSink:
    """Receives Apprise `json://` posts; `fail_next` makes it answer 500 that many times."""

    def __init__(self) -> None:
        self.posts: list[dict] = []
        self.times: list[float] = []
        """When each post arrived (monotonic), for checking rate limits."""
        self.fail_next = 0
        self.requests = 0
        self.answer_after = 0.0
        """Seconds to wait, after taking a post, before answering (a slow webhook)."""
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                sink.requests += 1
                if sink.fail_next > 0:
                    sink.fail_next -= 1
                    self.send_response(500)
                    self.end_headers()
                    return
                sink.posts.append(json.loads(body))
                sink.times.append(time.monotonic())
                if sink.answer_after:
                    time.sleep(sink.answer_after)
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.server.server_address[1]}/"

    def titles(self) -> list[str]:
        return [p.get("title", "") for p in self.posts]

    def __enter__(self) -> HttpSink:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


class SmtpSink:
    """An aiosmtpd server; `messages` holds each received mail as text."""

    def __init__(self, port: int | None = None) -> None:
        self.messages: list[str] = []
        self.port = port or free_port()
        sink = self

        class Handler:
            async def handle_DATA(self, server, session, envelope) -> str:
                sink.messages.append(envelope.content.decode("utf-8", "replace"))
                return "250 OK"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    @property
    def url(self) -> str:
        return (f"mailto://127.0.0.1:{self.port}?mode=insecure&from=alertd@example.com"
                "&to=trader@example.com")

    def __enter__(self) -> SmtpSink:
        self.controller.start()
        return self

    def __exit__(self, *exc) -> None:
        self.controller.stop()


class RawPeer:
    """A WebSocket peer written by hand, byte by byte: `script(conn)` runs for each accepted
    connection (in its own thread), to play servers no library would let us be."""

    def __init__(self, script: Callable[[socket.socket], None] | None = None) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.accepted = 0
        self.script = script or self.handshake_then_silence
        self._conns: list[socket.socket] = []
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @staticmethod
    def handshake_then_silence(conn: socket.socket) -> None:
        from alertd.sim.simulator import raw_handshake

        raw_handshake(conn)

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.sock.getsockname()[1]}/accounts/stream"

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self._conns.append(conn)
            threading.Thread(target=self._run, args=(conn,), daemon=True).start()

    def _run(self, conn: socket.socket) -> None:
        with contextlib.suppress(OSError):
            self.script(conn)

    def __enter__(self) -> RawPeer:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.sock.close()
        for conn in self._conns:
            conn.close()


BlackHole = RawPeer  # completes the WebSocket handshake, then never sends or answers anything


class JsonServer:
    """A REST server: answers each path from `routes` (status, headers, body), 404 otherwise,
    and records each request's path and headers."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[int, dict[str, str], bytes]] = {}
        self.seen: list[tuple[str, dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                server.seen.append((self.path, dict(self.headers)))
                status, headers, body = server.routes.get(self.path.split("?")[0],
                                                          (404, {}, b"{}"))
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
