"""Prometheus metrics: a real agent against the simulated exchanges, scraped over real HTTP on
127.0.0.1 and read with prometheus_client's own parser."""

from __future__ import annotations

import ast
import logging
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import alertd
from alertd import __version__
from alertd.common.errors import LoadError
from alertd.config import metrics as metrics_config
from alertd.config.load import load_config
from alertd.sim.frames import dd_order, sx_trade
from alertd.sim.simulator import deltadefi_key, sodex_key
from tests.conftest import API_KEY, USER, agent_config, build_agent, write
from tests.sinks import free_port, wait_for

DD, SPOT = deltadefi_key(API_KEY), sodex_key(USER, "spot")

RULES = """
rules:
  - name: fill
    on: fill
    notify: [hook]
    group_wait: 0
    title: "fill {account} {trade_id}"
  - name: big-fill
    on: fill
    when: {filled_qty: {gte: 1000}}
    notify: [hook]
    group_wait: 0
    title: "big fill {trade_id}"
"""
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
"""A proxy set in the environment must not stand between the test and 127.0.0.1."""


def scrape(port: int) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample on the endpoint, by (sample name, sorted labels)."""
    with NO_PROXY.open(f"http://127.0.0.1:{port}/metrics", timeout=5) as reply:
        text = reply.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: dict, name: str, **labels: str) -> float | None:
    return samples.get((name, tuple(sorted(labels.items()))))


def with_metrics(config: Path, address: str) -> Path:
    config.write_text(config.read_text() + f"metrics: {address}\n")
    return config


@pytest.fixture
def agents():
    started = []
    yield started
    for agent in started:
        agent.stop(timeout=5)


def start(agents: list, config: Path, rules_dir: Path):
    agent = build_agent(config, rules_dir)
    agents.append(agent)
    agent.start()
    return agent


def test_a_scrape_counts_frames_alerts_and_deliveries_and_labels_hold_no_secret(
        tmp_path, sim, http_sink, rules_dir, agents):
    port = free_port()
    config = with_metrics(agent_config(tmp_path, sim, {"hook": http_sink.url},
                                       markets="[spot]"), f"127.0.0.1:{port}")
    start(agents, config, rules_dir)
    assert sim.wait_ready(DD) and sim.wait_ready(SPOT, channels=4)
    before = scrape(port)
    assert value(before, "alertd_build_info", version=__version__) == 1
    assert value(before, "alertd_alerts_total", rule="fill") is None
    assert value(before, "alertd_deliveries_total", notifier="hook", outcome="sent") == 0
    assert wait_for(lambda: value(scrape(port), "alertd_stream_state", stream="main/spot",
                                  state="connected") == 1, 10)
    ok_before = value(before, "alertd_frames_total", stream="main/spot", result="ok") or 0

    sim.push_deltadefi(API_KEY, dd_order("o1", "closed", [("r1", "1500")], "1500"))
    sim.push_sodex(USER, "spot", "accountTrade", sx_trade(11, "0.2"))
    sim.push_deltadefi(API_KEY, "not json")
    assert wait_for(lambda: len(http_sink.posts) >= 3, 10)
    assert wait_for(lambda: value(scrape(port), "alertd_deliveries_total", notifier="hook",
                                  outcome="sent") == 3, 10)
    after = scrape(port)
    assert value(after, "alertd_frames_total", stream="main/spot", result="ok") >= ok_before + 1
    assert value(after, "alertd_frames_total", stream="main/spot", result="dropped") == 1
    assert value(after, "alertd_drops_total", stream="main/spot", reason="not_json") == 1
    assert value(after, "alertd_alerts_total", rule="fill") == 2
    assert value(after, "alertd_alerts_total", rule="big-fill") == 1
    assert value(after, "alertd_deliveries_total", notifier="hook", outcome="retry") == 0
    assert value(after, "alertd_outbox_pending", notifier="hook") == 0
    assert value(after, "alertd_outbox_oldest_pending_age_seconds", notifier="hook") == 0
    assert value(after, "alertd_frame_to_queued_seconds_count") == 3
    assert value(after, "alertd_frame_to_queued_seconds_bucket", le="+Inf") == 3
    assert value(after, "alertd_queued_to_delivered_seconds_count", notifier="hook") == 3
    assert value(after, "alertd_stream_connects_total", stream="desk/spot") == 1
    assert value(after, "alertd_catch_ups_total", stream="main/spot") >= 1
    assert value(after, "alertd_catch_up_failures_total", stream="main/spot") == 0
    assert value(after, "alertd_core_queue_depth") is not None
    assert value(after, "process_resident_memory_bytes") > 0
    labels = {v for _, pairs in after for _, v in pairs}
    leaks = [v for v in labels for secret in (API_KEY, USER, http_sink.url, "127.0.0.1",
                                              sim.deltadefi_url, sim.sodex_url) if secret in v]
    assert leaks == []


def test_a_reload_moves_the_endpoint_and_counts_do_not_go_back(
        tmp_path, sim, http_sink, rules_dir, agents):
    port, moved = free_port(), free_port()
    config = agent_config(tmp_path, sim, {"hook": http_sink.url}, markets="[spot]")
    plain = config.read_text()
    agent = start(agents, with_metrics(config, str(port)), rules_dir)
    assert sim.wait_ready(SPOT, channels=4)
    sim.push_sodex(USER, "spot", "accountTrade", sx_trade(11, "0.2"))
    assert wait_for(lambda: value(scrape(port), "alertd_deliveries_total", notifier="hook",
                                  outcome="sent") == 1, 10)
    write(config, plain.replace("notifiers:", f"notifiers:\n  spare: {http_sink.url!r}")
          + f"metrics: 127.0.0.1:{moved}\n")
    assert agent.reload()
    with pytest.raises(urllib.error.URLError):
        scrape(port)
    samples = scrape(moved)
    assert value(samples, "alertd_deliveries_total", notifier="hook", outcome="sent") == 1
    assert value(samples, "alertd_queued_to_delivered_seconds_count", notifier="hook") == 1
    assert value(samples, "alertd_deliveries_total", notifier="spare", outcome="sent") == 0


def test_a_port_in_use_is_one_logged_error_alertd_runs_on_and_a_reload_tries_again(
        tmp_path, sim, http_sink, rules_dir, agents, caplog):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        config = with_metrics(agent_config(tmp_path, sim, {"hook": http_sink.url},
                                           markets="[spot]"), f"127.0.0.1:{port}")
        with caplog.at_level(logging.INFO, logger="alertd"):
            agent = start(agents, config, rules_dir)
        assert agent.metrics is None
        errors = [r for r in caplog.records if r.levelno == logging.ERROR]
        assert [r.getMessage().split(" (")[0] for r in errors] == [
            f"metrics: cannot listen on 127.0.0.1:{port}"]
        assert errors[0].exc_info is None
        assert sim.wait_ready(SPOT, channels=4)
        sim.push_sodex(USER, "spot", "accountTrade", sx_trade(11, "0.2"))
        assert wait_for(lambda: http_sink.titles() == ["fill desk vBTC_vUSDC:11"], 10)
    assert agent.reload() and agent.metrics is not None
    assert value(scrape(port), "alertd_alerts_total", rule="fill") == 1


def test_off_by_default_no_endpoint_no_timing(tmp_path, sim, http_sink, rules_dir, agents):
    config = agent_config(tmp_path, sim, {"hook": http_sink.url}, markets="[spot]")
    agent = start(agents, config, rules_dir)
    assert agent.config.metrics is None and agent.metrics is None
    assert agent.core.latency is None


def test_alertd_without_metrics_never_imports_prometheus_client(tmp_path, sim, http_sink):
    config = agent_config(tmp_path, sim, {"hook": http_sink.url})
    code = ("import sys; from alertd.config.load import load_config; "
            "import alertd.runtime.agent, alertd.cli.main; "
            f"load_config(__import__('pathlib').Path({str(config)!r}), secrets=False); "
            "print('prometheus_client' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, timeout=60)
    assert out.stdout.strip() == "False"


def test_only_the_adapter_imports_prometheus_client():
    package = Path(alertd.__file__).parent
    importers = []
    for path in package.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            if any(n.split(".")[0] == "prometheus_client" for n in names):
                importers.append(path.relative_to(package).as_posix())
    assert sorted(set(importers)) == ["runtime/metrics.py"]


CONFIG = """\
accounts:
  - name: main
    exchange: deltadefi
    api_key: k
notifiers:
  hook: "json://127.0.0.1:1/"
state: {state}
metrics: {value}
"""


def load(tmp_path: Path, value: str):
    path = write(tmp_path / "alertd.yaml", CONFIG.format(state=tmp_path / "s.db", value=value))
    return load_config(path, env={})


@pytest.mark.parametrize(("value", "address"), [
    ("9464", "127.0.0.1:9464"), ("127.0.0.1:9464", "127.0.0.1:9464"),
    ("'[::1]:9100'", "[::1]:9100"), ("0.0.0.0:9464", "0.0.0.0:9464"),
    ("localhost:9464", "localhost:9464")])
def test_a_bare_port_is_loopback_and_another_host_only_when_written(tmp_path, value, address):
    spec = load(tmp_path, value).metrics
    assert spec is not None and str(spec) == address


@pytest.mark.parametrize(("value", "says"), [
    ("70000", "the port is a number from 1 to 65535"), ("0", "the port is a number"),
    ("':9464'", "has no host"), ("localhost", "the port is a number"),
    ("'::1:9464'", "put an IPv6 address in brackets"), ("true", "is not an address"),
    ("[9464]", "is not an address"), ("'999.1.1.1:9464'", "is not a host name or address"),
    ("'[127.0.0.1]:9464'", "is not an IPv6 address"), ("'my host:1'", "not a host name")])
def test_a_bad_metrics_value_is_a_file_line_problem(tmp_path, value, says):
    with pytest.raises(LoadError) as caught:
        load(tmp_path, value)
    [problem] = caught.value.problems
    assert str(problem).startswith(f"{tmp_path / 'alertd.yaml'}:8: 'metrics' ")
    assert says in str(problem) and "write a port (9464, on 127.0.0.1)" in str(problem)


def test_metrics_without_the_library_says_what_to_install(tmp_path, monkeypatch):
    monkeypatch.setattr(metrics_config, "find_spec", lambda name: None)
    with pytest.raises(LoadError) as caught:
        load(tmp_path, "9464")
    [problem] = caught.value.problems
    assert str(problem) == (f"{tmp_path / 'alertd.yaml'}:8: 'metrics' needs the "
                            "prometheus-client library, which is not installed: "
                            'pip install "alertd[metrics]"')


def test_metrics_absent_or_empty_is_off(tmp_path):
    assert load(tmp_path, "").metrics is None
    path = write(tmp_path / "plain.yaml", CONFIG.format(state=tmp_path / "s.db", value="1")
                 .replace("metrics: 1\n", ""))
    assert load_config(path, env={}).metrics is None
