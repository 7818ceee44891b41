"""The websocket-client adapter: the only module that imports websocket.

It turns the library's many exceptions into three of ours with redacted messages, so no caller
can leak the URL (and the DeltaDeFi key in it) by printing an error.
"""

from __future__ import annotations

import contextlib
import socket
import ssl
from collections.abc import Callable

import websocket

from alertd.redact import SecretURL, scrub


class TransportError(Exception):
    """The connection failed or broke; safe to log."""


class HandshakeRejected(TransportError):
    """The server answered the upgrade with an HTTP error such as 401 or 403."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


READ_AHEAD = 65536


class _ReadAhead:
    """Serves websocket-client's small exact reads (header, length, payload) from one large
    socket read: one system call per burst of frames instead of three per frame."""

    __slots__ = ("_buf", "_pos", "_recv")

    def __init__(self, recv: Callable[[int], bytes]) -> None:
        self._recv, self._buf, self._pos = recv, b"", 0

    def __call__(self, bufsize: int) -> bytes:
        if self._pos >= len(self._buf):
            self._buf, self._pos = self._recv(READ_AHEAD), 0
        start, self._pos = self._pos, min(self._pos + bufsize, len(self._buf))
        return self._buf[start:self._pos]


class Connection:
    """One open WebSocket; receive with a timeout, send text, ping, abort from any thread."""

    def __init__(self, ws: websocket.WebSocket) -> None:
        self._ws = ws
        self._timeout: float | None = None
        ws.frame_buffer.recv = _ReadAhead(ws.frame_buffer.recv)

    def recv(self, timeout: float) -> bytes | None:
        """The next frame's payload (b"" for a ping or pong), or None if nothing came in time."""
        try:
            if timeout != self._timeout:
                self._ws.settimeout(timeout)
                self._timeout = timeout
            opcode, data = self._ws.recv_data(control_frame=True)
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                raise TransportError("closed by the server")
            if opcode in (websocket.ABNF.OPCODE_PING, websocket.ABNF.OPCODE_PONG):
                return b""
            return data
        except websocket.WebSocketTimeoutException:
            return None
        except TransportError:
            raise
        except (websocket.WebSocketException, OSError, ssl.SSLError, ValueError) as exc:
            raise TransportError(_describe(exc)) from None

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
        sock = self._ws.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        with contextlib.suppress(Exception):  # closing an already broken socket
            self._ws.close(timeout=0.5)


def connect(url: SecretURL, timeout: float) -> Connection:
    """Open a WebSocket; the timeout bounds the TCP connect, the TLS and the HTTP handshake."""
    try:
        ws = websocket.create_connection(
            url.reveal(), timeout=timeout, skip_utf8_validation=True, enable_multithread=True)
    except websocket.WebSocketBadStatusException as exc:
        status = int(getattr(exc, "status_code", 0) or 0)
        raise HandshakeRejected(status, f"handshake refused with HTTP {status}") from None
    except (websocket.WebSocketException, OSError, ssl.SSLError, ValueError) as exc:
        raise TransportError(_describe(exc)) from None
    return Connection(ws)


def _describe(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return scrub(f"{type(exc).__name__}: {text}" if text else type(exc).__name__)[:200]
