"""`alertd [run]` and `alertd record`: the daemon, and the daemon recording its inputs."""

from __future__ import annotations

import argparse
import logging
import os
import signal
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, Protocol

from alertd.cli import EARLY_HUPS
from alertd.cli.common import load_all, report_problems, setup_logging
from alertd.common.errors import LoadError, Problem
from alertd.config.load import Config, find_config, load_config
from alertd.rules.model import RuleSet
from alertd.storage.location import is_postgres

if TYPE_CHECKING:  # apprise loads only for commands that send or check notifiers
    from alertd.delivery.notify import AppriseNotifier

log = logging.getLogger("alertd")


def cmd_run(args: argparse.Namespace) -> int:
    from alertd.runtime.agent import Agent

    setup_logging(args.verbose, fmt=getattr(args, "log_format", None))

    def load() -> tuple[Config, RuleSet, dict[str, AppriseNotifier]]:
        config, rules, notifiers = load_all(args.config, args.rules)
        for warning in config.warnings:
            log.warning("%s", warning)
        return config, rules, notifiers

    try:
        config, rules, notifiers = load()
        if is_postgres(config.state_path):
            return _run_node(config, load)
        agent = Agent(config, rules, notifiers, loader=load)
    except LoadError as exc:
        return report_problems(exc)
    _on_signals(agent)
    if EARLY_HUPS:
        EARLY_HUPS.clear()
        log.info("received SIGHUP while starting; reloading config and rules once started")
        agent.request_reload()
    code = agent.run()
    if agent.unfinished:
        logging.shutdown()
        os._exit(code)
    return code


def _run_node(config: Config, load: Callable[[], tuple[Config, RuleSet, Any]]) -> int:
    """On a PostgreSQL state: stand by until this alertd holds the leader's lock, then run
    the agent on that session (runtime/leader.py); the files are read again at each takeover."""
    from alertd.runtime.agent import Agent
    from alertd.runtime.leader import Node, node_name
    from alertd.storage.engine import MissingDriver, postgres_module

    try:
        postgres_module()
    except MissingDriver as exc:
        raise LoadError([Problem(config.path, config.state_line, str(exc))]) from None

    def build(connection: object, node: Node) -> Agent:
        return Agent(*load(), loader=load, connection=connection, ha=node)

    node = Node(config.state_path, node_name(config), build,  # type: ignore[arg-type]
                metrics=config.metrics)
    _on_signals(node)
    EARLY_HUPS.clear()  # a standby reads the files when it takes over anyway
    code = node.run()
    if node.unfinished:
        logging.shutdown()
        os._exit(code)
    return code


class _Runs(Protocol):
    def request_reload(self) -> None: ...
    def request_stop(self) -> None: ...


def _on_signals(target: _Runs) -> None:
    """SIGHUP reloads the config and rules; SIGTERM and SIGINT stop, as systemd expects."""

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            log.info("received SIGHUP; reloading config and rules")
            target.request_reload()
            return
        log.info("received %s; stopping", signal.Signals(signum).name)
        target.request_stop()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)


def cmd_record(args: argparse.Namespace) -> int:
    """The configured streams, recorded until stopped; no rule runs and nothing is sent."""
    import dataclasses
    import tempfile

    from alertd.authoring.record import Recording
    from alertd.runtime.agent import Agent

    setup_logging(args.verbose, fmt=getattr(args, "log_format", None))
    try:
        config = load_config(find_config(args.config))
    except LoadError as exc:
        return report_problems(exc)
    with tempfile.TemporaryDirectory(prefix="alertd-record-") as tmp:
        config = dataclasses.replace(config, state_path=Path(tmp) / "state.db")
        agent = Agent(config, RuleSet(()), {})
        recording = Recording(Path(args.out), max_bytes=int(args.max_mb * (1 << 20)))
        agent.pipeline.recorder = recording
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: agent.request_stop())
        log.info("recording %d streams to %s (rotating at %g MB); Ctrl-C stops",
                 len(agent.streams), args.out, args.max_mb)
        code = agent.run()
        recording.close()
        log.info("recorded %d lines", recording.lines)
    return code
