"""A simulated exchange on 127.0.0.1 speaking both account protocols over real WebSockets.

It backs `alertd demo` and the tests: it refuses bad DeltaDeFi keys with 401, acknowledges
SoDEX subscriptions (or refuses them, a channel at a time), answers `{"op":"ping"}`, sends a
snapshot on subscribe, pushes whatever frames it is given, and can cut connections abruptly or
go silent. Every SoDEX frame it makes (acks, pongs, snapshots, pushes) is held to
`contracts/sodex/` (a frame off it is a contract violation); `send_raw` sends anything.
This is the only module that imports websockets (the server side).
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qs, urlsplit

from websockets.exceptions import ConnectionClosed
from websockets.sync.server import Server, ServerConnection, serve

from alertd.sim.simrest import SimRest

WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


@dataclass(eq=False)
class _Client:
    key: str
    ws: ServerConnection
    subscribed: set[str] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def send(self, payload: str | bytes) -> bool:
        try:
            with self.lock:
                self.ws.send(payload)
            return True
        except (ConnectionClosed, OSError):
            return False


def raw_handshake(conn: socket.socket) -> str:
    """Answer a WebSocket upgrade on a plain socket by hand; returns the requested path.

    For servers that must control every byte afterwards (a benchmark blasting pre-encoded
    frames, a peer that goes silent), where a library would answer pings on its own.
    """
    request = b""
    while b"\r\n\r\n" not in request:
        chunk = conn.recv(4096)
        if not chunk:
            break
        request += chunk
    lines = request.decode("latin-1").split("\r\n")
    key = next((line.split(":", 1)[1].strip() for line in lines
                if line.lower().startswith("sec-websocket-key")), "")
    accept = base64.b64encode(hashlib.sha1((key + WS_GUID).encode()).digest()).decode()
    conn.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  f"Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n").encode())
    return lines[0].split(" ")[1] if " " in lines[0] else "/"


def deltadefi_key(api_key: str) -> str:
    return f"deltadefi:{api_key}"


def sodex_key(user: str, market: str) -> str:
    return f"sodex:{user.lower()}:{market}"


class Simulator:
    """Start with `with Simulator() as sim:`; URLs are `sim.deltadefi_url` and `sim.sodex_url`."""

    def __init__(self, valid_keys: set[str] | None = None, host: str = "127.0.0.1",
                 port: int = 0) -> None:
        self.valid_keys = valid_keys
        self.host = host
        self.requested_port = port
        """Where to listen; 0 picks a free port (`port` says which, once started)."""
        self.received: list[tuple[str, Any]] = []
        self.connects: Counter[str] = Counter()
        self.handshakes: Counter[str] = Counter()
        self.snapshots: dict[tuple[str, str], Any] = {}
        self.refuse_channels: set[str] = set()
        """Channels every SoDEX subscription is refused on (see `refuse_channel`)."""
        self._refusals: dict[tuple[str, str], int] = {}
        self.sodex_frames: list[tuple[str, dict[str, Any]]] = []
        """Every SoDEX frame sent (acks and pongs too), as (stream key, frame)."""
        self.silent: set[str] = set()
        self.refusing_until: dict[str, float] = {}
        self.rest = SimRest(valid_keys)
        self._clients: list[_Client] = []
        self._cond = threading.Condition()
        self._server: Server | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> Simulator:
        self._server = serve(self._handle, self.host, self.requested_port,
                             process_request=self._admit,
                             max_size=None, compression=None)
        self._thread = threading.Thread(target=self._server.serve_forever, name="simulator",
                                        daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self.drop_all()
            self._server.shutdown()
            if self._thread is not None:
                self._thread.join(5)

    def __enter__(self) -> Simulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.socket.getsockname()[1]

    @property
    def contract_violations(self) -> list[str]:
        """REST requests and replies off `contracts/deltadefi/` and `contracts/sodex/`, and
        SoDEX frames of its own off `contracts/sodex/` (see simrest.py); a test of a
        well-behaved client asserts this is empty."""
        return self.rest.contract_violations

    @property
    def deltadefi_url(self) -> str:
        return f"ws://{self.host}:{self.port}/accounts/stream"

    @property
    def sodex_url(self) -> str:
        return f"ws://{self.host}:{self.port}/ws"

    # --- what the exchange does ------------------------------------------------------------

    def _route(self, path: str) -> str | None:
        parts = urlsplit(path)
        if parts.path.rstrip("/") == "/accounts/stream":
            return deltadefi_key(parse_qs(parts.query).get("api_key", [""])[0])
        if parts.path in ("/ws/spot", "/ws/perps"):
            return f"sodex:*:{parts.path.rsplit('/', 1)[1]}"
        return None

    def _admit(self, conn: ServerConnection, request: Any) -> Any:
        rest = self.rest.answer(request.path, request.headers,
                                getattr(request, "method", "GET"))
        if rest is not None:
            response = conn.respond(rest[0], rest[1])
            response.headers["Content-Type"] = "application/json"
            return response
        key = self._route(request.path)
        with self._cond:
            self.handshakes[key or "?"] += 1
            self._cond.notify_all()
        if key is None:
            return conn.respond(404, "no such stream\n")
        if key.startswith("deltadefi:") and self.valid_keys is not None \
                and key.split(":", 1)[1] not in self.valid_keys:
            return conn.respond(401, "invalid api key\n")
        if time.monotonic() < self.refusing_until.get(key.split(":")[0], 0.0):
            return conn.respond(503, "maintenance\n")
        return None

    def _handle(self, ws: ServerConnection) -> None:
        key = self._route(ws.request.path) or "?"
        client = _Client(key, ws)
        self._register(client)
        try:
            for message in ws:
                self._on_message(client, message)
        except (ConnectionClosed, OSError):
            pass
        finally:
            with self._cond:
                if client in self._clients:
                    self._clients.remove(client)
                self._cond.notify_all()

    def _register(self, client: _Client) -> None:
        with self._cond:
            self._clients.append(client)
            if client.key.startswith("deltadefi:"):
                self.connects[client.key] += 1
            self._cond.notify_all()

    def _on_message(self, client: _Client, message: str | bytes) -> None:
        try:
            msg = json.loads(message)
        except ValueError:
            msg = message
        if client.key not in self.silent and client.key.startswith("sodex:") \
                and isinstance(msg, dict):
            if msg.get("op") == "ping":
                self._send_sodex(client, {"op": "pong"})
            elif msg.get("op") == "subscribe":
                self._subscribe(client, msg)
        with self._cond:
            self.received.append((client.key, msg))
            self._cond.notify_all()

    def _send_sodex(self, client: _Client, frame: dict[str, Any]) -> bool:
        """Send a SoDEX frame of the simulator's own, held to the contract first."""
        self._sodex_checked(client.key, frame)
        return client.send(json.dumps(frame))

    def _sodex_checked(self, key: str, frame: dict[str, Any]) -> None:
        self.rest.check_sodex_frame(key.rsplit(":", 1)[1], frame)
        with self._cond:
            self.sodex_frames.append((key, frame))
            if len(self.sodex_frames) > 5000:
                del self.sodex_frames[:1000]

    def _refused(self, key: str, channel: Any) -> bool:
        """Whether this subscription is refused: its channel always is, or `refuse_channel`
        has refusals left for it."""
        if channel in self.refuse_channels:
            return True
        with self._cond:
            left = self._refusals.get((key, str(channel)), 0)
            if left > 0:
                self._refusals[(key, str(channel))] = left - 1
            return left > 0

    def _subscribe(self, client: _Client, msg: dict[str, Any]) -> None:
        """Ack as sodex-go-sdk-public `ws/types.go` Response has it: op, id, success, result,
        error, connID."""
        params = msg.get("params") or {}
        channel, user = params.get("channel"), str(params.get("user", "")).lower()
        market = client.key.rsplit(":", 1)[1]
        ok = user.startswith("0x") and len(user) == 42 \
            and not self._refused(sodex_key(user, market), channel)
        self._send_sodex(client, {
            "op": "subscribe", "id": msg.get("id"),
            "result": {"channel": channel, "user": user, "accountID": 1001} if ok else None,
            "success": ok, "connID": "0xsim", "error": None if ok else "subscription refused"})
        if not ok:
            return
        with self._cond:
            if client.key.startswith("sodex:*:"):
                old_key = client.key
                client.key = sodex_key(user, market)
                self.silent.discard(old_key)
                self.connects[client.key] += 1
            client.subscribed.add(channel)
            self._cond.notify_all()
        snapshot = self.snapshots.get((client.key, channel))
        if snapshot is not None:  # what it restates is the account's, REST shows it too
            self.rest.sodex(user, market, str(channel), snapshot)
            self._send_sodex(client, {"channel": channel, "type": "snapshot", "data": snapshot})

    # --- what a test or the demo does ------------------------------------------------------

    def clients(self, key: str) -> list[_Client]:
        with self._cond:
            return [c for c in self._clients if c.key == key]

    def push_deltadefi(self, api_key: str, frame: dict[str, Any] | str | bytes,
                       live: bool = True) -> int:
        """Make it happen on the account (REST shows it) and, if `live`, send the frame to
        every socket of that key; returns how many got it."""
        self.rest.deltadefi(api_key, frame)
        if not live:
            return 0
        payload = frame if isinstance(frame, str | bytes) else json.dumps(frame)
        return sum(c.send(payload) for c in self.clients(deltadefi_key(api_key)))

    def push_sodex(self, user: str, market: str, channel: str, data: Any,
                   kind: str = "update", live: bool = True) -> int:
        """Make it happen on the account (REST shows it) and, if `live`, push it to every
        socket of that account subscribed to the channel; returns how many got it. A live
        push is held to the channel's contract, whether anyone listens or not."""
        self.rest.sodex(user, market, channel, data)
        if not live:
            return 0
        frame = {"channel": channel, "type": kind, "data": data}
        key = sodex_key(user, market)
        self._sodex_checked(key, json.loads(json.dumps(frame)))
        return self.send_raw(key, json.dumps(frame), channel)

    def refuse_channel(self, key: str, channel: str, times: int = 1) -> None:
        """Refuse the next `times` subscriptions of `key` (a `sodex_key`) to `channel`, with
        `success: false`; the socket and its other channels are not touched."""
        with self._cond:
            self._refusals[(key, channel)] = times

    def channels(self, key: str) -> set[str]:
        """The channels the live sockets of `key` are subscribed to."""
        with self._cond:
            return {ch for c in self._clients if c.key == key for ch in c.subscribed}

    def send_raw(self, key: str, payload: str | bytes, channel: str | None = None) -> int:
        return sum(c.send(payload) for c in self.clients(key)
                   if channel is None or channel in c.subscribed)

    def drop(self, key: str) -> int:
        """Cut every socket of `key` abruptly: no close frame, like a network failure."""
        clients = self.clients(key)
        for c in clients:
            with contextlib.suppress(OSError):
                c.ws.socket.shutdown(socket.SHUT_RDWR)
        return len(clients)

    def drop_all(self) -> None:
        with self._cond:
            keys = {c.key for c in self._clients}
        for key in keys:
            self.drop(key)

    def refuse(self, exchange: str, seconds: float) -> None:
        """Answer handshakes for one exchange with 503 for a while."""
        self.refusing_until[exchange] = time.monotonic() + seconds

    def wait(self, predicate: Callable[[], bool], timeout: float = 10.0) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            while not predicate():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.2))
        return True

    def wait_ready(self, key: str, connects: int = 1, channels: int = 0,
                   timeout: float = 10.0) -> bool:
        """Wait until `key` has connected `connects` times and a live socket has `channels`."""
        def ready() -> bool:
            live = [c for c in self._clients if c.key == key]
            return self.connects[key] >= connects and any(
                len(c.subscribed) >= channels for c in live)
        return self.wait(ready, timeout)
