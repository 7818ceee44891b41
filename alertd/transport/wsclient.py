"""The websocket-client adapter: the only module that imports websocket.

It turns the library's many exceptions into ours with redacted messages, so no caller can leak
the URL (and the DeltaDeFi key in it) by printing an error. It also bounds what a peer can make
us hold: a message's size is checked when announced (never buffered first), fragments are
counted and joined once, and neither the handshake nor a message may take forever.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import websocket

from alertd.common.redact import SecretURL, scrub

MAX_FRAME = 1 << 20
"""The largest message read (bytes); a larger one is refused before it is buffered."""
MAX_FRAGMENTS = 1024
MESSAGE_TIME = 30.0
READ_AHEAD = 65536


class TransportError(Exception):
    """The connection failed or broke; safe to log."""


class HandshakeRejected(TransportError):
    """The server answered the upgrade with an HTTP error such as 401 or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Refused(TransportError):
    """The peer sent a message we will not hold (too large, too many fragments, too slow);
    the connection is given up, since the rest of that message cannot be skipped safely."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class _ReadAhead:
    """Serves websocket-client's small exact reads (header, length, payload) from one large
    socket read: one system call per burst of frames instead of three per frame. Every read
    also checks the deadline, so a peer dripping one message forever cannot hold the loop."""

    __slots__ = ("_buf", "_pos", "_recv", "deadline", "limit")

    def __init__(self, recv: Callable[[int], bytes], limit: float) -> None:
        self._recv, self._buf, self._pos = recv, b"", 0
        self.deadline, self.limit = float("inf"), limit

    def pending(self) -> bool:
        return self._pos < len(self._buf)

    def __call__(self, bufsize: int) -> bytes:
        if self._pos >= len(self._buf):
            if time.monotonic() > self.deadline:
                raise Refused("too_slow",
                              f"a message took longer than {self.limit:g} s to arrive")
            self._buf, self._pos = self._recv(READ_AHEAD), 0
        start, self._pos = self._pos, min(self._pos + bufsize, len(self._buf))
        return self._buf[start:self._pos]


class Connection:
    """One open WebSocket; receive with a timeout, send text, ping, abort from any thread."""

    def __init__(self, ws: websocket.WebSocket, message_time: float = MESSAGE_TIME) -> None:
        self._ws = ws
        self._timeout: float | None = None
        self._parts: list[bytes] = []
        self._size = 0
        buffer = ws.frame_buffer
        self._reader = buffer.recv = _ReadAhead(buffer.recv, message_time)
        read_length = buffer.recv_length

        def checked_length() -> None:
            read_length()
            size = buffer.length + self._size
            if size > MAX_FRAME:
                raise Refused("oversized", f"a message of {size} bytes was announced; "
                                           f"the limit is {MAX_FRAME} bytes")

        buffer.recv_length = checked_length

    def buffered(self) -> bool:
        """Whether bytes of a next message are read already: the caller may wait for it."""
        return self._reader.pending()

    def recv(self, timeout: float) -> bytes | None:
        """The next message's payload (b"" for a ping or pong), or None if nothing came in
        time; a message still arriving after `message_time` ends the connection."""
        try:
            if timeout != self._timeout:
                self._ws.settimeout(timeout)
                self._timeout = timeout
            self._reader.deadline = time.monotonic() + max(timeout, self._reader.limit)
            while True:
                data = self._message(self._ws.recv_frame())
                if data is not None:
                    return data
        except websocket.WebSocketTimeoutException:
            return None
        except TransportError:
            raise
        except (websocket.WebSocketException, OSError, ssl.SSLError, ValueError) as exc:
            raise TransportError(_describe(exc)) from None

    def _message(self, frame: websocket.ABNF) -> bytes | None:
        """Fragments are kept as a list and joined once: linear in the message's size."""
        op = frame.opcode
        if op == websocket.ABNF.OPCODE_CLOSE:
            raise TransportError("closed by the server")
        if op == websocket.ABNF.OPCODE_PING:
            self._ws.pong(frame.data)
            return b""
        if op == websocket.ABNF.OPCODE_PONG:
            return b""
        if (op == websocket.ABNF.OPCODE_CONT) != bool(self._parts):
            raise TransportError("fragments out of order")
        if frame.fin and not self._parts:
            return frame.data
        self._parts.append(frame.data)
        self._size += len(frame.data)
        if len(self._parts) > MAX_FRAGMENTS:
            raise Refused("too_fragmented",
                          f"a message split into more than {MAX_FRAGMENTS} fragments")
        if not frame.fin:
            return None
        data, self._parts, self._size = b"".join(self._parts), [], 0
        return data

    def send(self, text: str) -> None:
        try:
            self._ws.send(text)
        except (websocket.WebSocketException, OSError, ssl.SSLError) as exc:
            raise TransportError(_describe(exc)) from None

    def ping(self) -> None:
        try:
            self._ws.ping()
        except (websocket.WebSocketException, OSError, ssl.SSLError) as exc:
            raise TransportError(_describe(exc)) from None

    def abort(self) -> None:
        """Shut the socket down at once (a plain close can wait ~10 s on a silent peer)."""
        _shutdown(self._ws)
        with contextlib.suppress(Exception):  # closing an already broken socket
            self._ws.close(timeout=0.5)


def connect(url: SecretURL, timeout: float, cancel: threading.Event | None = None, *,
            message_time: float = MESSAGE_TIME) -> Connection:
    """Open a WebSocket within `timeout` in all: TCP, TLS and HTTP handshake together, since
    the library's timeout is per read and a server dripping its answer would never hit it.
    Setting `cancel` (the agent stopping) cuts the attempt at once."""
    ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
    done, cut = threading.Event(), threading.Event()
    _WATCH.add(_Attempt(ws, time.monotonic() + timeout, cancel, done, cut))
    try:
        ws.connect(url.reveal(), timeout=timeout)
    except websocket.WebSocketBadStatusException as exc:
        status = int(getattr(exc, "status_code", 0) or 0)
        raise HandshakeRejected(status, f"handshake refused with HTTP {status}") from None
    except (websocket.WebSocketException, OSError, ssl.SSLError, ValueError) as exc:
        if cut.is_set():
            raise TransportError(f"handshake not finished within {timeout:.0f} s") from None
        raise TransportError(_describe(exc)) from None
    finally:
        done.set()
    if cut.is_set():
        _shutdown(ws)
        raise TransportError(f"handshake not finished within {timeout:.0f} s")
    return Connection(ws, message_time)


@dataclass(frozen=True, eq=False)
class _Attempt:
    """One connect in flight (compared by identity)."""

    ws: websocket.WebSocket
    deadline: float
    cancel: threading.Event | None
    done: threading.Event
    cut: threading.Event


class _Watch:
    """One thread that cuts every handshake past its deadline or cancelled, for all the
    connects in flight: a thread per connect made 700 threads of 410 sockets reconnecting
    at once. It ends when none is left and starts again with the next."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._attempts: list[_Attempt] = []
        self._running = False

    def add(self, attempt: _Attempt) -> None:
        with self._lock:
            self._attempts.append(attempt)
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name="ws-connect-watch", daemon=True).start()

    def _run(self) -> None:
        while True:
            time.sleep(0.05)
            now = time.monotonic()
            with self._lock:
                self._attempts = [a for a in self._attempts if not a.done.is_set()]
                due = [a for a in self._attempts if a.ws.sock is not None and (
                    now >= a.deadline or (a.cancel is not None and a.cancel.is_set()))]
                self._attempts = [a for a in self._attempts if a not in due]
                if not self._attempts and not due:
                    self._running = False
                    return
            for attempt in due:
                attempt.cut.set()
                _shutdown(attempt.ws)


_WATCH = _Watch()


def _shutdown(ws: websocket.WebSocket) -> None:
    sock = ws.sock
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.shutdown(socket.SHUT_RDWR)


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return scrub(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:200]
