"""Hostile peers and a broken host, on real sockets: each case costs what it must and no more."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import threading
import time
import tracemalloc

import pytest

from alertd.cli.status import report
from alertd.common.redact import SecretURL
from alertd.sim.frames import sx_trade
from alertd.sim.simulator import raw_handshake, sodex_key
from alertd.transport import wsclient
from tests.conftest import API_KEY, USER, agent_config, build_agent, running
from tests.sinks import HttpSink, RawPeer, wait_for
from tests.system.test_faults import RULES  # noqa: F401  (rules_dir reads the module's RULES)

SPOT = sodex_key(USER, "spot")


def frame(payload: bytes, opcode: int = 1, fin: bool = True) -> bytes:
    """One unmasked server frame, as the wire carries it."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    if n < 126:
        return head + bytes([n]) + payload
    if n < 1 << 16:
        return head + bytes([126]) + struct.pack("!H", n) + payload
    return head + bytes([127]) + struct.pack("!Q", n) + payload


def peer_then(*chunks: bytes, hold: float = 5.0):
    """A script: handshake, send the chunks, then keep the socket open a while."""
    def script(conn) -> None:
        raw_handshake(conn)
        for chunk in chunks:
            conn.sendall(chunk)
        time.sleep(hold)
    return script


def open_to(peer: RawPeer, **kw) -> wsclient.Connection:
    return wsclient.connect(SecretURL(peer.url), 3.0, **kw)


def test_a_gigabyte_frame_is_refused_when_announced_not_after_buffering_it():
    announced = bytes([0x81, 127]) + struct.pack("!Q", 1 << 30)
    with RawPeer(peer_then(frame(b'{"ok":1}'), announced + b"x" * 65536)) as peer:
        conn = open_to(peer)
        assert conn.recv(2.0) == b'{"ok":1}'
        tracemalloc.start()
        with pytest.raises(wsclient.Refused) as refused:
            conn.recv(2.0)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        conn.abort()
    assert refused.value.reason == "oversized"
    assert "1073741824 bytes was announced" in str(refused.value)
    assert peak < 4 << 20


def test_fragments_are_counted_and_a_fragmented_message_within_limits_is_whole():
    parts = [b'{"a":"', *[b"x" * 10] * 500, b'"}']
    good = [frame(parts[0], fin=False), *[frame(p, 0, fin=False) for p in parts[1:-1]],
            frame(parts[-1], 0)]
    flood = [frame(b"y", fin=False), *[frame(b"y", 0, fin=False)] * 200_000]
    with RawPeer(peer_then(b"".join(good), b"".join(flood))) as peer:
        conn = open_to(peer)
        assert conn.recv(2.0) == b"".join(parts)
        started = time.monotonic()
        with pytest.raises(wsclient.Refused) as refused:
            conn.recv(2.0)
        conn.abort()
    assert refused.value.reason == "too_fragmented"
    assert time.monotonic() - started < 5


def test_a_fragmented_message_over_the_size_limit_is_refused_by_its_running_total():
    half = b"z" * (600 * 1024)
    with RawPeer(peer_then(frame(half, fin=False), frame(half, 0))) as peer:
        conn = open_to(peer)
        with pytest.raises(wsclient.Refused) as refused:
            conn.recv(2.0)
        conn.abort()
    assert refused.value.reason == "oversized"


def test_a_message_dripped_byte_by_byte_ends_the_connection_at_the_deadline():
    def drip(conn) -> None:
        raw_handshake(conn)
        conn.sendall(bytes([0x81, 100]))
        for _ in range(100):
            conn.sendall(b"a")
            time.sleep(0.05)

    with RawPeer(drip) as peer:
        conn = open_to(peer, message_time=1.0)
        started = time.monotonic()
        with pytest.raises(wsclient.Refused) as refused:
            while conn.recv(0.5) is None:
                pass
        conn.abort()
    assert refused.value.reason == "too_slow"
    assert time.monotonic() - started < 3


def test_a_dripped_handshake_times_out_as_a_whole_and_can_be_cancelled():
    def drip(conn) -> None:
        for byte in b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n" * 50:
            conn.sendall(bytes([byte]))
            time.sleep(0.05)

    with RawPeer(drip) as peer:
        started = time.monotonic()
        with pytest.raises(wsclient.TransportError, match="handshake not finished within 1 s"):
            wsclient.connect(SecretURL(peer.url), 1.0)
        assert time.monotonic() - started < 2.5
        cancel = threading.Event()
        threading.Timer(0.3, cancel.set).start()
        started = time.monotonic()
        with pytest.raises(wsclient.TransportError):
            wsclient.connect(SecretURL(peer.url), 30.0, cancel)
        assert time.monotonic() - started < 2


def test_a_dripped_rest_reply_is_cut_at_the_deadline_for_the_whole_call():
    from alertd.transport.http import Http, RestError

    def drip(conn) -> None:
        conn.recv(4096)
        for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n" + b" " * 1000:
            conn.sendall(bytes([byte]))
            time.sleep(0.02)

    with RawPeer(drip) as peer:
        http = Http(timeout=1.0)
        started = time.monotonic()
        with pytest.raises(RestError, match="no whole reply within 1 s"):
            http.get(peer.url.replace("ws://", "http://") + "?key=SECRET")
        assert time.monotonic() - started < 2.5
        http.close()




def test_an_endless_handshake_is_an_unreachable_stream_and_stop_is_prompt(tmp_path, sim,
                                                                          rules_dir):
    def drip(conn) -> None:
        while True:
            conn.sendall(b"H")
            time.sleep(0.2)

    with RawPeer(drip) as peer, HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        cfg.write_text(cfg.read_text().replace(sim.deltadefi_url, peer.url))
        agent = build_agent(cfg, rules_dir)
        agent.start()
        try:
            assert wait_for(lambda: "stream main spot disconnected" in sink.titles(), 20)
            post = next(p for p in sink.posts if p["title"] == "stream main spot disconnected")
            assert "handshake not finished within" in post["message"]
            assert wait_for(lambda: peer.accepted >= 2, 10)
        finally:
            started = time.monotonic()
            agent.stop(timeout=5)
        assert time.monotonic() - started < 3


def test_stop_cuts_a_rest_catch_up_that_drips(tmp_path, sim, rules_dir):
    def drip(conn) -> None:
        while True:
            conn.sendall(b"H")
            time.sleep(0.2)

    with RawPeer(drip) as peer:
        cfg = agent_config(tmp_path, sim, {"hook": "json://127.0.0.1:9/"}, markets="[spot]")
        cfg.write_text(cfg.read_text().replace(sim.deltadefi_url, peer.url))
        agent = build_agent(cfg, rules_dir)
        agent.start()
        try:
            assert wait_for(lambda: peer.accepted >= 1, 10)  # the catch-up's first GET
        finally:
            started = time.monotonic()
            agent.stop(timeout=8)
        assert time.monotonic() - started < 3  # not the REST deadline (10 s) nor the grace


def test_a_refused_message_is_counted_and_the_stream_heals(tmp_path, sim, rules_dir):
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        with running(cfg, rules_dir) as agent:
            assert sim.wait_ready(SPOT, channels=4)
            sim.send_raw(SPOT, b"x" * (2 << 20), "accountTrade")
            assert sim.wait_ready(SPOT, connects=2, channels=4)
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(5, "0.1"))
            assert wait_for(lambda: "fill vBTC_vUSDC:5" in sink.titles(), 10)
            assert agent.pipeline.drops.counts[(agent.streams[-1].source.key, "oversized")] == 1


# --- the state file -------------------------------------------------------------------------

FULL = ("PRAGMA max_page_count = {pages}", "PRAGMA max_page_count = 1073741823")
READ_ONLY = ("PRAGMA query_only = 1", "PRAGMA query_only = 0")


@pytest.mark.parametrize("fault", [FULL, READ_ONLY], ids=["disk_full", "read_only"])
def test_a_state_file_that_cannot_be_written_pauses_says_so_and_loses_nothing(
        tmp_path, sim, rules_dir, fault):
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        agent = build_agent(cfg, rules_dir)
        agent.core.retry_write = 0.3
        agent.start()
        try:
            assert sim.wait_ready(SPOT, channels=4)
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(1, "0.1"))
            assert wait_for(lambda: "fill vBTC_vUSDC:1" in sink.titles(), 10)
            agent.save_health()
            pages = agent.store.db.execute("PRAGMA page_count").fetchone()[0]
            agent.core.call(agent.store.db.execute, fault[0].format(pages=pages))
            for n in range(2, 62):
                sim.push_sodex(USER, "spot", "accountTrade", sx_trade(n, "0.1"))
            assert wait_for(lambda: "alertd cannot write its state file" in sink.titles(), 10)
            assert wait_for(lambda: agent.streams[-1].state == "paused", 10)
            status = io.StringIO()
            report(tmp_path / "state.db", status, now=time.time() + 120)  # wall clock ok
            assert f"alertd: running (pid {os.getpid()})" in status.getvalue()
            assert "cannot write its state file" in status.getvalue()
            for n in range(62, 70):  # while paused: the exchange keeps no copy for the socket
                sim.push_sodex(USER, "spot", "accountTrade", sx_trade(n, "0.1"))
            time.sleep(1)
            agent.store.db.execute(fault[1])
            expected = {f"fill vBTC_vUSDC:{n}" for n in range(1, 70)}
            assert wait_for(lambda: expected <= set(sink.titles()), 20)
            assert wait_for(lambda: "alertd writes its state file again" in sink.titles(), 5)
        finally:
            agent.stop(timeout=5)
    fills = [t for t in sink.titles() if t.startswith("fill")]
    assert sorted(fills) == sorted(expected)  # each once


def test_a_second_agent_on_the_same_state_file_refuses_to_start_naming_the_first(
        tmp_path, sim, rules_dir):
    cfg = agent_config(tmp_path, sim, {"hook": "json://127.0.0.1:9/"}, markets="[spot]")
    env = {**os.environ, "TEST_DD_KEY": API_KEY}
    first = subprocess.Popen([sys.executable, "-m", "alertd", "--rules", str(rules_dir),
                              "--config", str(cfg)], env=env, stderr=subprocess.DEVNULL)
    try:
        assert wait_for(lambda: (tmp_path / "state.db.lock").exists()
                        and (tmp_path / "state.db.lock").read_text().strip(), 20)
        second = subprocess.run([sys.executable, "-m", "alertd", "--rules", str(rules_dir),
                                 "--config", str(cfg)], env=env, capture_output=True,
                                text=True, timeout=60)
        assert second.returncode != 0
        assert f"another alertd (pid {first.pid}) is using the state file" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.terminate()
        assert first.wait(30) == 0


def test_a_deleted_state_file_is_noticed_written_back_and_the_restart_repeats_nothing(
        tmp_path, sim, rules_dir):
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        env = {**os.environ, "TEST_DD_KEY": API_KEY}
        cmd = [sys.executable, "-m", "alertd", "--rules", str(rules_dir), "--config", str(cfg)]
        agent = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True)
        try:
            assert sim.wait_ready(SPOT, channels=4, timeout=30)
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(1, "0.1"))
            assert wait_for(lambda: "fill vBTC_vUSDC:1" in sink.titles(), 10)
            (tmp_path / "state.db").unlink()
            assert agent.wait(30) == 75
            assert "alertd's state file was deleted" in sink.titles()
            assert "was deleted while alertd was using it" in agent.stderr.read()
        finally:
            agent.kill()
        assert (tmp_path / "state.db").exists()
        again = subprocess.Popen(cmd, env=env, stderr=subprocess.DEVNULL)
        try:
            assert sim.wait_ready(SPOT, connects=2, channels=4, timeout=30)
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(2, "0.1"))
            assert wait_for(lambda: "fill vBTC_vUSDC:2" in sink.titles(), 10)
        finally:
            again.terminate()
            again.wait(30)
    assert [t for t in sink.titles() if t.startswith("fill")] == ["fill vBTC_vUSDC:1",
                                                                  "fill vBTC_vUSDC:2"]
