"""`alertd [run] | check | status | test | explain | demo | ...`: the parser and the dispatch;
each command is in the module named for it, and mistakes are `file:line: message`."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable

from alertd import __version__
from alertd.cli.check import cmd_check, cmd_notify_test
from alertd.cli.common import report_problems
from alertd.cli.run import cmd_record, cmd_run
from alertd.cli.silence import add_parser as silence_parser
from alertd.cli.silence import cmd_silence
from alertd.cli.sim import add_parser as sim_parser
from alertd.cli.sim import cmd_sim
from alertd.cli.tools import cmd_demo, cmd_explain, cmd_replay, cmd_schema, cmd_test
from alertd.common.errors import LoadError
from alertd.config.load import find_config, load_config
from alertd.storage.location import state_location

log = logging.getLogger("alertd")


def cmd_status(args: argparse.Namespace) -> int:
    from alertd.cli.status import UNKNOWN, check, report

    show = check if args.check else report
    if args.state:
        return show(state_location(args.state))
    try:
        config = load_config(find_config(args.config), secrets=False)
    except LoadError as exc:
        if args.check:
            print(f"UNKNOWN: {exc.problems[0]}")
            return UNKNOWN
        return report_problems(exc)
    return show(config.state_path)


def common(p: argparse.ArgumentParser, rules_required: bool = True) -> None:
    """The daemon's options, which `run`, `check` and `record` share."""
    p.add_argument("--rules", required=rules_required, metavar="DIR",
                   help="folder of *.yaml rule files (searched recursively)")
    p.add_argument("--config", metavar="FILE", help="config file (default: ./alertd.yaml, "
                   "$XDG_CONFIG_HOME/alertd/alertd.yaml, /etc/alertd/alertd.yaml)")
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--log-format", choices=("text", "json", "journal"), default=None,
                   help="how log lines look (default: journal under systemd, else text)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="alertd", description="Alerts from DeltaDeFi and SoDEX account streams.",
        epilog="Without a command, alertd runs: alertd --rules rules/ [--config alertd.yaml]")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="watch the accounts and send alerts (the default)")
    common(run)
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
    status.add_argument("--check", action="store_true",
                        help="one line and a monitoring-plugin exit code (0 OK, 1 WARNING, "
                        "2 CRITICAL, 3 UNKNOWN), for cron, monit, Nagios or a health check")
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
    silence_parser(sub)
    sim_parser(sub)
    return parser


COMMAND_FUNCTIONS: dict[str, Callable[[argparse.Namespace], int]] = {
    "check": cmd_check, "demo": cmd_demo, "status": cmd_status, "test": cmd_test,
    "explain": cmd_explain, "notify-test": cmd_notify_test, "schema": cmd_schema,
    "record": cmd_record, "replay": cmd_replay, "run": cmd_run, "silence": cmd_silence,
    "sim": cmd_sim}
COMMANDS = ("run", "check", "demo", "status", "test", "explain", "notify-test", "schema",
            "record", "replay", "silence", "sim", "-h", "--help")


def _run_options() -> str:
    """The daemon's options, for the top-level help (running is the default command)."""
    run = argparse.ArgumentParser(prog="alertd [run]", add_help=False)
    common(run)
    return run.format_help().split("\n\n", 1)[1]


def main(argv: list[str] | None = None) -> int:
    try:
        return _main(list(sys.argv[1:] if argv is None else argv))
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `alertd test rules/ | head`: the reader left; so do we
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115  (no flush error at exit)
        return 0


def _main(argv: list[str]) -> int:
    parser = _parser()
    if argv in ([], ["-h"], ["--help"]):  # the commands, then the daemon's own options
        parser.print_help()
        print("\nalertd [run] " + _run_options())
        return 0
    if argv in (["--version"], ["-V"]):
        print(f"alertd {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        argv = ["run", *argv]
    args = parser.parse_args(argv)
    return COMMAND_FUNCTIONS.get(args.command, cmd_run)(args)
