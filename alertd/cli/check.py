"""`alertd check` and `alertd notify-test`: everything a user wrote is checked, nothing is
started, and a notifier is tried only when asked."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from typing import TYPE_CHECKING

from alertd.cli.common import load_all, report_problems, setup_logging
from alertd.common.errors import LoadError
from alertd.config.load import find_config, load_config

if TYPE_CHECKING:  # apprise loads only for commands that send or check notifiers
    from alertd.delivery.notify import AppriseNotifier

log = logging.getLogger("alertd")


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
        return report_problems(exc)


SCHEME_ONLY = ("notifier URLs were checked by scheme only; alertd loads each in Apprise when "
               "it starts, and `alertd check --notifiers` loads each and sends it a test message")
"""Said by `check` without `--notifiers`: loading Apprise to parse each URL's fields would
more than double the time of checking 100 rules (0.15 s to 0.35 s) and its memory."""


def cmd_check(args: argparse.Namespace) -> int:
    as_json = args.format == "json"
    try:
        config, rules, notifiers = load_all(args.config, args.rules, build=args.notifiers)
    except LoadError as exc:
        if as_json:
            print(json.dumps({"ok": False, "problems": [
                {"file": str(p.file), "line": p.line, "message": p.message}
                for p in exc.problems]}, indent=2))
            return 1
        return report_problems(exc)
    from alertd.exchanges import EXCHANGES

    accounts = ", ".join(EXCHANGES[a.exchange].describe_account(a) for a in config.accounts)
    names = list(config.notifiers)
    unused = sorted(set(names) - rules.notifiers_used())
    summary = (f"{rules.summary()}; {len(config.accounts)} accounts: {accounts}; "
               f"{len(names)} notifiers: {', '.join(names)}"
               + (f" (unused: {', '.join(unused)})" if unused else ""))
    note = None if args.notifiers else SCHEME_ONLY
    if as_json:
        print(json.dumps({"ok": True, "summary": summary, "problems": [],
                          "warnings": list(config.warnings), "notes": [note] if note else []},
                         indent=2))
    else:
        for warning in config.warnings:
            print(f"warning: {warning}", file=sys.stderr)
        print(f"ok: {summary}")
        if note:
            print(f"note: {note}")
    if args.notifiers:
        return probe(notifiers)
    return 0
