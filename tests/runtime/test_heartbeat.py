"""The heartbeat to a dead man's switch: a real HTTP server on 127.0.0.1 plays healthchecks.io
and Uptime Kuma, and a real agent decides when it is healthy enough to ping."""

from __future__ import annotations

import logging
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from alertd.common.errors import LoadError
from alertd.config.load import load_config
from alertd.runtime.heartbeat import LOG_AGAIN_AFTER, Heartbeat, pings_for
from alertd.sim.frames import sx_trade
from alertd.sim.simulator import sodex_key
from tests.conftest import USER, Clock, agent_config, build_agent, write
from tests.sinks import HttpSink, wait_for
from tests.system.test_faults import RULES  # noqa: F401  (rules_dir reads the module's RULES)

UUID = "5f3a1c2e-9d1b-4e7a-8c44-1f0e2d3c4b5a"


class Switch:
    """A push-check endpoint: records (method, path, query, body); `status` is its answer."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, dict[str, list[str]], str]] = []
        self.status = 200
        switch = self

        class Handler(BaseHTTPRequestHandler):
            def _record(self) -> None:
                length = int(self.headers.get("Content-Length", 0) or 0)
                body = self.rfile.read(length).decode() if length else ""
                parts = urlsplit(self.path)
                switch.calls.append((self.command, parts.path, parse_qs(parts.query), body))
                self.send_response(switch.status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"OK")

            do_GET = do_POST = _record

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> Switch:
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_healthchecks_conventions_keep_the_query_and_kuma_gets_status_and_msg():
    start, ok, fail = pings_for(f"https://hc-ping.com/{UUID}?rid=1")
    assert start().url == f"https://hc-ping.com/{UUID}/start?rid=1"
    assert ok().url == f"https://hc-ping.com/{UUID}?rid=1" and ok().body is None
    assert fail("core stuck") .url == f"https://hc-ping.com/{UUID}/fail?rid=1"
    assert fail("core stuck").body == "core stuck"
    start, ok, fail = pings_for("https://kuma.example/api/push/AbC123?status=up&msg=OK&ping=")
    assert parse_qs(urlsplit(ok().url).query) == {"status": ["up"], "msg": ["OK"]}
    down = urlsplit(fail("state file\ncannot be written").url)
    assert down.path == "/api/push/AbC123"
    assert parse_qs(down.query)["status"] == ["down"]
    assert parse_qs(down.query)["msg"] == ["state file\ncannot be written"]


def test_pings_only_while_healthy_reports_the_reason_and_logs_a_dead_switch_once(caplog):
    caplog.set_level(logging.INFO, logger="alertd")
    problem: list[str | None] = [None]
    clock = Clock()
    with Switch() as switch:
        beat = Heartbeat(f"{switch.base}/{UUID}", 60, lambda: problem[0], clock=clock)
        beat.start()
        assert wait_for(lambda: len(switch.calls) == 1)
        assert switch.calls[0][:2] == ("GET", f"/{UUID}/start")
        beat.beat()
        assert switch.calls[-1][:2] == ("GET", f"/{UUID}")
        problem[0] = "not making progress: core"
        beat.beat()
        assert switch.calls[-1] == ("POST", f"/{UUID}/fail", {}, "not making progress: core")
        assert beat.sent == 3
        problem[0] = None
        switch.status = 500
        for _ in range(3):
            beat.beat()
            clock.now += 60
        warnings = [r.getMessage() for r in caplog.records if "heartbeat" in r.getMessage()]
        assert len(warnings) == 1 and "HTTP 500" in warnings[0]
        clock.now += LOG_AGAIN_AFTER
        beat.beat()
        switch.status = 200
        beat.beat()
        beat.stop()
    said = [r.getMessage() for r in caplog.records if "heartbeat" in r.getMessage()]
    assert len(said) == 3 and "4 failed pings so far" in said[1]
    assert "works again after 4 failed pings" in said[2]
    assert all(UUID not in line for line in caplog.text.splitlines())


def test_an_unreachable_switch_is_a_logged_failure_never_a_hung_thread(caplog):
    with Switch() as switch:
        url = f"{switch.base}/{UUID}"
    beat = Heartbeat(url, 60, lambda: None)
    beat.beat()
    assert beat.failures == 1 and beat.sent == 0
    assert "heartbeat to http://127.0.0.1" in caplog.text and UUID not in caplog.text


def test_the_agent_pings_on_start_and_reports_a_state_file_it_cannot_write(tmp_path, sim,
                                                                           rules_dir, caplog):
    with Switch() as switch, HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        cfg.write_text(cfg.read_text() + f"heartbeat:\n  url: {switch.base}/{UUID}\n"
                       "  every: 10m\n")
        agent = build_agent(cfg, rules_dir)
        agent.core.retry_write = 0.3
        agent.start()
        try:
            assert wait_for(lambda: [c[1] for c in switch.calls] == [f"/{UUID}/start"])
            assert agent.heartbeat is not None and agent.heartbeat.every == 600
            assert sim.wait_ready(sodex_key(USER, "spot"), channels=4)
            agent.heartbeat.beat()
            assert switch.calls[-1][:2] == ("GET", f"/{UUID}")
            agent.core.call(agent.store.db.execute, "PRAGMA query_only = 1")
            sim.push_sodex(USER, "spot", "accountTrade", sx_trade(1, "0.1"))
            assert wait_for(lambda: agent.core.stalled is not None)
            agent.heartbeat.beat()
            method, path, _, body = switch.calls[-1]
            assert (method, path) == ("POST", f"/{UUID}/fail")
            assert "the state file cannot be written" in body
            agent.store.db.execute("PRAGMA query_only = 0")
            assert wait_for(lambda: agent.core.stalled is None, 10)
            agent.heartbeat.beat()
            assert switch.calls[-1][:2] == ("GET", f"/{UUID}")
        finally:
            agent.stop(timeout=5)
    assert UUID not in caplog.text


@pytest.mark.parametrize("block, line, message", [
    ("heartbeat: https://hc-ping.com/x", 3, "'heartbeat' is a mapping with 'url'"),
    ("heartbeat:\n  url: ftp://hc-ping.com/x", 4, "'heartbeat.url' is an http:// or https://"),
    ("heartbeat:\n  url: https://hc-ping.com/x\n  every: 2s", 5, "'heartbeat.every' is a"),
    ("heartbeat:\n  url: https://hc-ping.com/x\n  evry: 60s", 5, "evry"),
])
def test_a_bad_heartbeat_block_is_a_problem_with_its_line(tmp_path, block, line, message):
    cfg = write(tmp_path / "alertd.yaml", "accounts: []\nnotifiers: {}\n" + block + "\n")
    with pytest.raises(LoadError) as caught:
        load_config(cfg, env={})
    said = [str(p) for p in caught.value.problems if "'accounts'" not in str(p)
            and "'notifiers'" not in str(p)]
    assert len(said) == 1 and said[0].startswith(f"{cfg}:{line}: ") and message in said[0]


def test_no_heartbeat_block_means_no_heartbeat(tmp_path):
    cfg = write(tmp_path / "alertd.yaml", "accounts:\n  - name: desk\n    exchange: sodex\n"
                f'    user: "{USER}"\nnotifiers:\n  hook: json://127.0.0.1:9/\n')
    assert load_config(cfg, env={}).heartbeat is None
