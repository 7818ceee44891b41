"""`alertd demo`, `test`, `explain`, `replay` and `schema`: the tools that run the core on a
fake clock or print what the loaders check."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from alertd.cli.common import load_all, report_problems, setup_logging
from alertd.common.errors import LoadError
from alertd.rules.load import load_rules

if TYPE_CHECKING:  # apprise loads only for commands that send or check notifiers
    pass

log = logging.getLogger("alertd")


def cmd_demo(args: argparse.Namespace) -> int:
    from alertd.sim.demo import run_demo

    setup_logging(args.verbose, level=logging.CRITICAL)
    try:
        return run_demo(rules_dir=args.rules, notify_urls=args.notify, record=args.record)
    except LoadError as exc:
        return report_problems(exc)

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
        return report_problems(exc)
    print("\n".join(explain(rules, event)))
    return 0

def cmd_replay(args: argparse.Namespace) -> int:
    from alertd.authoring.replay import replay

    setup_logging(args.verbose, level=logging.CRITICAL)
    try:
        rules = load_rules(Path(args.rules), None)
        notifiers = None
        if args.send:
            _, rules, notifiers = load_all(args.config, args.rules)
    except LoadError as exc:
        return report_problems(exc)
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
