"""The command line. Its entry point takes SIGHUP before anything else is imported:
`systemctl reload` right after `start` would otherwise find the default action (exit)
while the libraries and the rules still load."""

from __future__ import annotations

import signal
import threading

EARLY_HUPS: list[int] = []
"""SIGHUPs that came before the daemon could reload; it reloads once started if any did."""


def main(argv: list[str] | None = None) -> int:
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGHUP, lambda signum, _frame: EARLY_HUPS.append(signum))
    from alertd.cli.main import main as run

    return run(argv)
