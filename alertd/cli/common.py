"""What every command shares: logging set up once for the process, loading config, rules
and notifiers, and printing load problems as `file:line: message`."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from alertd.common.errors import LoadError
from alertd.common.redact import RedactingFormatter, install_log_redaction
from alertd.config.load import Config, find_config, load_config
from alertd.rules.load import load_rules
from alertd.rules.model import RuleSet

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

PRIORITY = {logging.DEBUG: 7, logging.INFO: 6, logging.WARNING: 4, logging.ERROR: 3,
            logging.CRITICAL: 2}
"""syslog priorities, as journald reads them from a `<N>` prefix (sd-daemon(3))."""


class _Journal(RedactingFormatter):
    """Under journald: no timestamp of our own (the journal has one) and a `<N>` priority
    prefix, so `journalctl -p warning` shows alertd's warnings and worse."""

    def format(self, record: logging.LogRecord) -> str:
        return f"<{PRIORITY.get(record.levelno, 6)}>{super().format(record)}"


class _Json(RedactingFormatter):
    """One JSON object per line for log shippers: time (UTC), level, logger, message."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        entry = {"time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                     timespec="milliseconds"), "level": record.levelname.lower(),
                 "logger": record.name, "message": text}
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(verbose: bool = False, level: int = logging.INFO,
                  fmt: str | None = None) -> None:
    """One stderr handler on the root logger; every record, from any library and whatever
    handler takes it, is scrubbed and escaped as it is made (`install_log_redaction`).
    `fmt`: `text`, `json`, or `journal`; by default `journal` when stderr is the journal
    (systemd sets JOURNAL_STREAM), else `text`."""
    install_log_redaction()
    if fmt is None:
        fmt = "journal" if os.environ.get("JOURNAL_STREAM") else "text"
    handler = _Stderr()
    if fmt == "json":
        handler.setFormatter(_Json("%(message)s"))
    elif fmt == "journal":
        handler.setFormatter(_Journal("%(message)s"))
    else:
        handler.setFormatter(RedactingFormatter("%(asctime)s %(levelname)s %(message)s",
                                                "%Y-%m-%dT%H:%M:%S"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.DEBUG if verbose else level)
    logging.getLogger("websockets").setLevel(logging.WARNING)
    logging.getLogger("websocket").setLevel(logging.CRITICAL)


def load_all(config_arg: str | None, rules_dir: str,
             build: bool = True) -> tuple[Config, RuleSet, dict[str, AppriseNotifier]]:
    """Config, rules and notifiers, each reporting every problem it finds (no sending). With
    `build` False (`alertd check`), the notifiers' URLs are checked by scheme and none is
    built, since loading Apprise is most of the command's time and memory."""
    from alertd.delivery.notify import build_notifiers, check_schemes

    config = load_config(find_config(config_arg))
    rules = load_rules(Path(rules_dir), config.notifiers, [a.name for a in config.accounts])
    if not build:
        check_schemes(config.notifiers, config.path, config.notifier_lines)
        return config, rules, {}
    return config, rules, build_notifiers(config.notifiers, config.path, config.notifier_lines)

def report_problems(exc: LoadError) -> int:
    """Every load problem as `file:line: message` on stderr, then a count; exit status 1."""
    for problem in exc.problems:
        print(problem, file=sys.stderr)
    n = len(exc.problems)
    print(f"alertd: {n} problem{'s' if n != 1 else ''} found; nothing was started",
          file=sys.stderr)
    return 1
