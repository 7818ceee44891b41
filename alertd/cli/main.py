"""`alertd [run] | check | status | test | explain | demo`: the command line; mistakes are
`file:line: message`."""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from alertd.cli import EARLY_HUPS
from alertd.common.errors import LoadError
from alertd.common.redact import RedactingFormatter, install_log_redaction
from alertd.config.load import Config, find_config, load_config
from alertd.rules.load import RuleSet, load_rules

if TYPE_CHECKING:  # apprise loads only for commands that send or check notifiers
    from alertd.delivery.notify import AppriseNotifier

log = logging.getLogger("alertd")


class _Stderr(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record comes, not when it was set up (a
    caller that swaps stderr, as a test runner does, must not leave it writing to a closed
    stream)."""

    @property  # type: ignore[override]
    def stream(self) -> object:
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def setup_logging(verbose: bool = False, level: int = logging.INFO) -> None:
    """One stderr handler on the root logger; every record, from any library and whatever
    handler takes it, is scrubbed and escaped as it is made (`install_log_redaction`)."""
    install_log_redaction()
    handler = _Stderr()
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


def probe(notifiers: dict[str, AppriseNotifier]) -> int:
    """One test message through each URL of each notifier; 1 if any was not taken."""
    failed = 0
    for name, notifier in notifiers.items():
        for url, problem in notifier.probe("alertd test message", f"notifier '{name}' works: "
                                           "this came from alertd notify-test."):
            print(f"{name}: {url}: " + ("ok" if problem is None else f"FAILED: {problem}"))
            failed += problem is not None
    return 1 if failed else 0


def cmd_notify_test(args: argparse.Namespace) -> int:
    from alertd.common.redact import register_notifier_url
    from alertd.delivery.notify import build_notifiers

    setup_logging(level=logging.CRITICAL)
    try:
        if "://" in args.target:
            register_notifier_url(args.target)
            return probe(build_notifiers({"url": (args.target,)}, "<command line>"))
        config = load_config(find_config(args.config))
        if args.target not in config.notifiers:
            from alertd.common.suggest import did_you_mean

            print(f"alertd: {config.path}: no notifier '{args.target}'"
                  f"{did_you_mean(args.target, config.notifiers)}; the config defines: "
                  f"{', '.join(config.notifiers)}", file=sys.stderr)
            return 1
        return probe(build_notifiers({args.target: config.notifiers[args.target]},
                                     config.path, config.notifier_lines))
    except LoadError as exc:
        return _report(exc)


def cmd_check(args: argparse.Namespace) -> int:
    as_json = args.format == "json"
    try:
        config, rules, notifiers = load_all(args.config, args.rules)
    except LoadError as exc:
        if as_json:
            print(json.dumps({"ok": False, "problems": [
                {"file": str(p.file), "line": p.line, "message": p.message}
                for p in exc.problems]}, indent=2))
            return 1
        return _report(exc)
    from alertd.exchanges import EXCHANGES

    accounts = ", ".join(EXCHANGES[a.exchange].describe_account(a) for a in config.accounts)
    unused = sorted(set(notifiers) - rules.notifiers_used())
    summary = (f"{rules.summary()}; {len(config.accounts)} accounts: {accounts}; "
               f"{len(notifiers)} notifiers: {', '.join(notifiers)}"
               + (f" (unused: {', '.join(unused)})" if unused else ""))
    if as_json:
        print(json.dumps({"ok": True, "summary": summary, "problems": [],
                          "warnings": list(config.warnings)}, indent=2))
    else:
        for warning in config.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"ok: {summary}")
    if args.notifiers:
        return probe(notifiers)
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from alertd.runtime.agent import Agent

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
    if EARLY_HUPS:
        EARLY_HUPS.clear()
        log.info("received SIGHUP while starting; reloading config and rules once started")
        agent.request_reload()
    code = agent.run()
    if agent.unfinished:
        logging.shutdown()
        os._exit(code)
    return code


def cmd_status(args: argparse.Namespace) -> int:
    from alertd.cli.status import report

    if args.state:
        return report(Path(args.state))
    try:
        config = load_config(find_config(args.config), secrets=False)
    except LoadError as exc:
        return _report(exc)
    return report(config.state_path)


def cmd_demo(args: argparse.Namespace) -> int:
    from alertd.sim.demo import run_demo

    setup_logging(args.verbose, level=logging.CRITICAL)
    try:
        return run_demo(rules_dir=args.rules, notify_urls=args.notify, record=args.record)
    except LoadError as exc:
        return _report(exc)


def cmd_test(args: argparse.Namespace) -> int:
    from alertd.authoring.ruletest import main as run_tests

    setup_logging(args.verbose, level=logging.CRITICAL)
    return run_tests(args.files, sys.stdout)


def cmd_explain(args: argparse.Namespace) -> int:
    from alertd.authoring.explain import explain, load_event

    try:
        rules = load_rules(Path(args.rules), None)
        event = load_event(Path(args.event))
    except LoadError as exc:
        return _report(exc)
    print("\n".join(explain(rules, event)))
    return 0


def cmd_record(args: argparse.Namespace) -> int:
    """The configured streams, recorded until stopped; no rule runs and nothing is sent."""
    import dataclasses
    import tempfile

    from alertd.authoring.record import Recording
    from alertd.runtime.agent import Agent

    setup_logging(args.verbose)
    try:
        config = load_config(find_config(args.config))
    except LoadError as exc:
        return _report(exc)
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


def cmd_replay(args: argparse.Namespace) -> int:
    from alertd.authoring.replay import replay

    setup_logging(args.verbose, level=logging.CRITICAL)
    try:
        rules = load_rules(Path(args.rules), None)
        notifiers = None
        if args.send:
            _, rules, notifiers = load_all(args.config, args.rules)
    except LoadError as exc:
        return _report(exc)
    path = Path(args.file)
    if not path.is_file():
        print(f"alertd: {path}: no such recording", file=sys.stderr)
        return 1
    alerts, counts, problems = replay(path, rules, state=Path(args.state) if args.state else None,
                                      realtime=args.realtime, progress=sys.stderr)
    for problem in problems[:20]:
        print(problem, file=sys.stderr)
    failed = 0
    for alert in alerts:
        print(f"[{','.join(alert.notify)}] {alert.title}\n    "
              + alert.message.replace("\n", "\n    "))
        for name in alert.notify if notifiers is not None else ():
            try:
                notifiers[name].send(alert.title, alert.message, alert.severity)
            except Exception as exc:
                failed += 1
                print(f"    not sent to {name}: {exc}", file=sys.stderr)
    print(f"replayed {counts['lines']} lines: {counts['frames']} frames, {counts['alerts']} "
          f"alerts in {counts['messages']} messages"
          + (" (sent)" if notifiers is not None else " (nothing sent; --send sends them)"))
    return 1 if failed or problems else 0


def cmd_schema(args: argparse.Namespace) -> int:
    from alertd.authoring.schemas import text

    sys.stdout.write(text(args.which))
    return 0


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
    check = sub.add_parser("check", help="validate config and rules; connect and send nothing")
    common(check)
    check.add_argument("--format", choices=("text", "json"), default="text",
                       help="json: {ok, summary, problems: [{file, line, message}], warnings}, "
                       "for editors and CI")
    check.add_argument("--notifiers", action="store_true", help="also send a test message "
                       "through every notifier URL (see notify-test)")
    notify_test = sub.add_parser("notify-test", help="send one test message through a "
                                 "notifier (or an Apprise URL); exit 1 if a URL failed")
    notify_test.add_argument("target", metavar="NAME|URL")
    notify_test.add_argument("--config", metavar="FILE", help="config file naming NAME")
    status = sub.add_parser("status", help="streams, outbox and dropped frames, from the "
                            "state file")
    status.add_argument("--config", metavar="FILE", help="config file naming the state file")
    status.add_argument("--state", metavar="FILE", help="the state file itself (under systemd: "
                        "/var/lib/alertd/state.db)")
    test = sub.add_parser("test", help="run rule tests (*.test.yaml): inputs on a fake clock, "
                          "the alerts expected", description="Each test file names its rule "
                          "files and lists cases of input frames or events and the alerts "
                          "they must raise; a folder is searched for *.test.yaml.")
    test.add_argument("files", nargs="+", metavar="FILE|DIR")
    test.add_argument("-v", "--verbose", action="store_true", help="show the core's log")
    explain = sub.add_parser("explain", help="which rules an event fires, and why the others "
                             "do not", description="EVENT is a YAML or JSON file: kind and the "
                             "event's fields, e.g. {kind: balance, account: main, asset: ada, "
                             "free: 450}.")
    explain.add_argument("--rules", required=True, metavar="DIR", help="folder of rule files")
    explain.add_argument("event", metavar="EVENT")
    record = sub.add_parser("record", help="record every frame of the configured streams to a "
                            "JSON-lines file (keys and addresses removed), for replay")
    record.add_argument("--config", metavar="FILE", help="config file naming the accounts")
    record.add_argument("--out", required=True, metavar="FILE", help="recording to append to")
    record.add_argument("--max-mb", type=float, default=100.0, metavar="MB",
                        help="rotate past this size (keeps 5 old files; default 100)")
    record.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    replay = sub.add_parser("replay", help="run a recording through rules and print what "
                            "would have been sent")
    replay.add_argument("file", metavar="FILE")
    replay.add_argument("--rules", required=True, metavar="DIR", help="folder of rule files")
    replay.add_argument("--state", metavar="FILE", help="start from a copy of this state file "
                        "(default: a fresh one)")
    replay.add_argument("--realtime", action="store_true", help="at the recorded pace "
                        "(default: as fast as it goes)")
    replay.add_argument("--send", action="store_true", help="also send the alerts through the "
                        "config's notifiers")
    replay.add_argument("--config", metavar="FILE", help="config file (with --send)")
    replay.add_argument("-v", "--verbose", action="store_true", help="show the core's log")
    schema = sub.add_parser("schema", help="print the JSON Schema of rule files or the config, "
                            "for editors", description="Save it next to your files and point "
                            "the YAML language server at it: "
                            "# yaml-language-server: $schema=rules.schema.json")
    schema.add_argument("which", choices=("rules", "config"))
    demo = sub.add_parser("demo", help="a scripted session against a simulated exchange")
    demo.add_argument("--rules", metavar="DIR", help="rules to use (default: the examples)")
    demo.add_argument("--notify", action="append", default=[], metavar="URL",
                      help="also send each alert to this Apprise URL (repeatable)")
    demo.add_argument("--record", metavar="FILE", help="also record the session, for "
                      "alertd replay")
    demo.add_argument("-v", "--verbose", action="store_true", help="show the agent's log")
    return parser


COMMANDS = ("run", "check", "demo", "status", "test", "explain", "notify-test", "schema",
            "record", "replay", "-h", "--help")


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in COMMANDS:
        argv = ["run", *argv]
    args = _parser().parse_args(argv)
    try:
        if args.command == "check":
            return cmd_check(args)
        if args.command == "demo":
            return cmd_demo(args)
        if args.command == "status":
            return cmd_status(args)
        if args.command == "test":
            return cmd_test(args)
        if args.command == "explain":
            return cmd_explain(args)
        if args.command == "notify-test":
            return cmd_notify_test(args)
        if args.command == "schema":
            return cmd_schema(args)
        if args.command == "record":
            return cmd_record(args)
        if args.command == "replay":
            return cmd_replay(args)
        return cmd_run(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `alertd test rules/ | head`: the reader left; so do we
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (no flush error at exit)
        return 0

