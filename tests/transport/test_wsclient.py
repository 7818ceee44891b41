"""The handshake watch (transport/wsclient.py): every connect in flight is cut at its
deadline or when cancelled, by one thread for all of them (a thread each made 700 threads
of 410 sockets reconnecting at once)."""

from __future__ import annotations

import threading
import time

import pytest

from alertd.common.redact import SecretURL
from alertd.transport import wsclient
from tests.sinks import RawPeer, wait_for


def drip(conn) -> None:
    """Answers the upgrade one byte every 0.2 s, never finishing: the library's own read
    timeout never fires, so only the watch can end the attempt."""
    conn.recv(65536)
    for _ in range(150):
        conn.sendall(b"H")
        time.sleep(0.2)


def test_many_hanging_handshakes_share_one_watch_and_each_is_cut():
    errors: list[str] = []
    cancel = threading.Event()

    def attempt(timeout: float, stop: threading.Event | None) -> None:
        try:
            wsclient.connect(SecretURL(peer.url), timeout, stop)
        except wsclient.TransportError as exc:
            errors.append(str(exc))

    with RawPeer(drip) as peer:
        # no more at once than the peer's listen backlog (8): a connect the kernel drops waits
        # for its SYN's retry, which no handshake watch can see
        tries = [threading.Thread(target=attempt, args=(1.0, None)) for _ in range(6)]
        tries += [threading.Thread(target=attempt, args=(60.0, cancel)) for _ in range(2)]
        for t in tries:
            t.start()
        assert wait_for(lambda: peer.accepted >= len(tries), 10, interval=0.01)
        watchers = [t for t in threading.enumerate() if t.name == "ws-connect-watch"]
        assert len(watchers) <= 2  # one; a second only while an earlier one is ending
        for t in tries[:6]:
            t.join(10)
        assert len(errors) == 6 and all("within 1 s" in e for e in errors), errors
        cancel.set()  # the stop: the long ones are cut now, not at their 60 s
        for t in tries[6:]:
            t.join(10)
        assert len(errors) == 8 and not any(t.is_alive() for t in tries)


def test_the_watch_ends_with_its_last_connect_and_starts_again():
    with RawPeer(drip) as peer:
        for _ in range(2):
            with pytest.raises(wsclient.TransportError):
                wsclient.connect(SecretURL(peer.url), 0.3)
            assert wait_for(lambda: not any(t.name == "ws-connect-watch"
                                            for t in threading.enumerate()), 5, interval=0.01)
