"""`alertd [run] | check | demo`: the command line, with user mistakes as `file:line: message`."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from alertd.config import Config, find_config, load_config
from alertd.errors import LoadError
from alertd.redact import RedactingFormatter
from alertd.rules import RuleSet, load_rules

if TYPE_CHECKING:  # apprise loads only for commands that send or check notifiers
    from alertd.delivery.notify import AppriseNotifier

log = logging.getLogger("alertd")


def setup_logging(verbose: bool = False, level: int = logging.INFO) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(message)s",
                                            "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else level)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("websocket").setLevel(logging.CRITICAL)


def load_all(config_arg: str | None,
             rules_dir: str) -> tuple[Config, RuleSet, dict[str, AppriseNotifier]]:
    """Config, rules and notifiers, each reporting every problem it finds (no sending)."""
    from alertd.delivery.notify import build_notifiers

    config = load_config(find_config(config_arg))
    rules = load_rules(Path(rules_dir), config.notifiers, [a.name for a in config.accounts])
    return config, rules, build_notifiers(config.notifiers, config.path, config.notifier_lines)


def _report(exc: LoadError) -> int:
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    n = len(exc.problems)
    print(f"alertd: {n} problem{'s' if n != 1 else ''} found; nothing was started",
          file=sys.stderr)
    return 1


def cmd_check(args: argparse.Namespace) -> int:
    try:
        config, rules, notifiers = load_all(args.config, args.rules)
    except LoadError as exc:
        return _report(exc)
    for warning in config.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    from alertd.exchanges import EXCHANGES

    accounts = ", ".join(EXCHANGES[a.exchange].describe_account(a) for a in config.accounts)
    unused = sorted(set(notifiers) - rules.notifiers_used())
    print(f"ok: {rules.summary()}; {len(config.accounts)} accounts: {accounts}; "
          f"{len(notifiers)} notifiers: {', '.join(notifiers)}"
          + (f" (unused: {', '.join(unused)})" if unused else ""))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from alertd.agent import Agent

    setup_logging(args.verbose)

    def load() -> tuple[Config, RuleSet, dict[str, AppriseNotifier]]:
        config, rules, notifiers = load_all(args.config, args.rules)
        for warning in config.warnings:
            log.warning("%s", warning)
        return config, rules, notifiers

    try:
        config, rules, notifiers = load()
        agent = Agent(config, rules, notifiers, loader=load)
    except LoadError as exc:
        return _report(exc)

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        if signum == signal.SIGHUP:
            log.info("received SIGHUP; reloading config and rules")
            agent.request_reload()
            return
        log.info("received %s; stopping", signal.Signals(signum).name)
        agent.request_stop()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    return agent.run()


def cmd_status(args: argparse.Namespace) -> int:
    from alertd.status import report

    if args.state:
        return report(Path(args.state))
    try:
        config = load_config(find_config(args.config), secrets=False)
    except LoadError as exc:
        return _report(exc)
    return report(config.state_path)


def cmd_demo(args: argparse.Namespace) -> int:
    from alertd.demo import run_demo

    setup_logging(args.verbose, level=logging.CRITICAL)
    try:
        return run_demo(rules_dir=args.rules, notify_urls=args.notify)
    except LoadError as exc:
        return _report(exc)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alertd", description="Alerts from DeltaDeFi and SoDEX account streams.",
        epilog="Without a command, alertd runs: alertd --rules rules/ [--config alertd.yaml]")
    sub = parser.add_subparsers(dest="command")

    def common(p: argparse.ArgumentParser, rules_required: bool = True) -> None:
        p.add_argument("--rules", required=rules_required, metavar="DIR",
                       help="folder of *.yaml rule files (searched recursively)")
        p.add_argument("--config", metavar="FILE", help="config file (default: ./alertd.yaml, "
                       "$XDG_CONFIG_HOME/alertd/alertd.yaml, /etc/alertd/alertd.yaml)")
        p.add_argument("-v", "--verbose", action="store_true", help="debug logging")

    common(sub.add_parser("run", help="watch the accounts and send alerts (the default)"))
    common(sub.add_parser("check", help="validate config and rules; connect and send nothing"))
    status = sub.add_parser("status", help="streams, outbox and dropped frames, from the "
                            "state file")
    status.add_argument("--config", metavar="FILE", help="config file naming the state file")
    status.add_argument("--state", metavar="FILE", help="the state file itself (under systemd: "
                        "/var/lib/alertd/state.db)")
    demo = sub.add_parser("demo", help="a scripted session against a simulated exchange")
    demo.add_argument("--rules", metavar="DIR", help="rules to use (default: the examples)")
    demo.add_argument("--notify", action="append", default=[], metavar="URL",
                      help="also send each alert to this Apprise URL (repeatable)")
    demo.add_argument("-v", "--verbose", action="store_true", help="show the agent's log")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in ("run", "check", "demo", "status", "-h", "--help"):
        argv = ["run", *argv]
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            return cmd_check(args)
        if args.command == "demo":
            return cmd_demo(args)
        if args.command == "status":
            return cmd_status(args)
        return cmd_run(args)
    except KeyboardInterrupt:
        return 130

