from __future__ import annotations

import datetime as dt
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from alertd.config.load import load_config
from alertd.delivery.notify import build_notifiers
from alertd.domain.observations import Source
from alertd.ingest.stream import StreamSettings
from alertd.rules.load import load_rules
from alertd.sim.simulator import Simulator, deltadefi_key, sodex_key
from tests.sinks import HttpSink, SmtpSink

API_KEY = "sk-live-TOPSECRET-4242"
USER = "0xed3e79ef16a7890e6eaef2aa6373b6bec5d59d5c"
MAIN = Source("main", "deltadefi", "spot")
SPOT = Source("desk", "sodex", "spot")
PERPS = Source("desk", "sodex", "perps")
DD_KEY, SPOT_KEY = deltadefi_key(API_KEY), sodex_key(USER, "spot")
"""The simulator's names for the test accounts' streams."""
START = dt.datetime(2026, 11, 23, 5, 17, tzinfo=dt.UTC).timestamp()
"""Where a fake clock starts: a fixed instant, so no test depends on when it runs."""


class Clock:
    """A clock the test moves by hand (`now`), for the code that takes one."""

    def __init__(self, now: float = START) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now
FAST = StreamSettings(connect_timeout=3, ping_every=0.5, idle_timeout=3, ack_timeout=3,
                      backoff_first=0.1, backoff_max=0.5, stable_after=30, refused_backoff=2,
                      down_after=1.0, tick=0.1)


@pytest.fixture(autouse=True)
def _logging_as_it_was() -> Iterator[None]:
    """An in-process `alertd ...` sets up logging for a whole process (the root logger's level
    and handler); put it back, so a test's captured logs never depend on the one before."""
    root = logging.getLogger()
    level, before = root.level, set(root.handlers)
    yield
    root.setLevel(level)
    for handler in list(root.handlers):
        if handler not in before and type(handler).__module__.startswith("alertd"):
            root.removeHandler(handler)


@pytest.fixture(params=["UTC", "Europe/Berlin", "Pacific/Kiritimati", "America/Los_Angeles"])
def local_zone(request, monkeypatch) -> Iterator[str]:
    """Runs a test under each of several local time zones (the machine's TZ), so a result that
    leans on the zone CI happens to run in fails here first."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


@pytest.fixture
def sim() -> Iterator[Simulator]:
    with Simulator(valid_keys={API_KEY}) as s:
        yield s


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    with HttpSink() as sink:
        yield sink


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def agent_config(tmp: Path, sim: Simulator, notifiers: dict[str, str | list[str]],
                 api_key: str = "${TEST_DD_KEY}", markets: str = "[spot, perps]") -> Path:
    lines = ["accounts:",
             "  - name: main", "    exchange: deltadefi", f"    api_key: {api_key}",
             f"    url: {sim.deltadefi_url}",
             "  - name: desk", "    exchange: sodex", f'    user: "{USER}"',
             f"    url: {sim.sodex_url}", f"    markets: {markets}",
             "notifiers:"]
    for name, urls in notifiers.items():
        lines.append(f"  {name}: {urls!r}".replace("'", '"'))
    lines += [f"state: {tmp / 'state.db'}", "stream_down_after: 1"]
    return write(tmp / "alertd.yaml", "\n".join(lines) + "\n")


def build_agent(config_path: Path, rules_dir: Path, env: dict[str, str] | None = None,
                settings: StreamSettings = FAST):
    """An agent on these files, which `reload()` reads again, as SIGHUP would."""
    from alertd.runtime.agent import Agent

    def load():
        config = load_config(config_path, env={"TEST_DD_KEY": API_KEY, **(env or {})})
        rules = load_rules(rules_dir, config.notifiers, [a.name for a in config.accounts])
        return config, rules, build_notifiers(config.notifiers, config.path,
                                              config.notifier_lines)

    return Agent(*load(), settings=settings, loader=load)


@contextmanager
def running(config_path: Path, rules_dir: Path, **kw):
    """An in-process agent, started, and stopped however the test ends."""
    agent = build_agent(config_path, rules_dir, **kw)
    agent.start()
    try:
        yield agent
    finally:
        agent.stop(timeout=5)


@pytest.fixture
def rules_dir(tmp_path, request) -> Path:
    """A rules folder holding the test module's RULES."""
    write(tmp_path / "rules" / "r.yaml", request.module.RULES)
    return tmp_path / "rules"


class AgentProcess:
    """`alertd --rules ... --config ...` as a child process, as systemd would run it."""

    def __init__(self, tmp: Path, config: Path, rules: Path, env: dict[str, str] | None = None):
        self.log = tmp / f"agent-{os.getpid()}-{id(self)}.log"
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "alertd", "--rules", str(rules), "--config", str(config)],
            stdout=subprocess.DEVNULL, stderr=self.log.open("w"),
            env={**os.environ, "TEST_DD_KEY": API_KEY, **(env or {})})

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait(self, timeout: float = 30) -> int:
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        return self.log.read_text()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)


@pytest.fixture
def spawn(tmp_path):
    started: list[AgentProcess] = []

    def start(config: Path, rules: Path, env: dict[str, str] | None = None) -> AgentProcess:
        agent = AgentProcess(tmp_path, config, rules, env)
        started.append(agent)
        return agent

    yield start
    for agent in started:
        agent.kill()


@pytest.fixture(scope="session")
def pg_cluster():
    """One throwaway PostgreSQL cluster for the session (tests/pg.py); skips without one."""
    from tests.pg import Cluster

    cluster = Cluster()
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_url(pg_cluster) -> str:
    """A fresh, empty PostgreSQL database for this test."""
    return pg_cluster.new_database()


@pytest.fixture(params=["sqlite", "postgres"])
def state(request, tmp_path):
    """The state location for a test that must hold on both engines: an SQLite file, or a
    fresh PostgreSQL database (as `state:` would give them). Tests of what only a file has
    (deleted under alertd, the WAL's fsync, a full disk, the lock file, a copy for a child
    process) keep `tmp_path / "s.db"`: they are SQLite only."""
    from alertd.storage.location import state_location

    if request.param == "sqlite":
        return tmp_path / "s.db"
    return state_location(request.getfixturevalue("pg_url"))
