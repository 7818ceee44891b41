"""`alertd sim`: the simulated exchanges on 127.0.0.1 for a real alertd, driven by commands
read one a line (see `alertd.sim.console`)."""

from __future__ import annotations

import argparse
import logging

from alertd.cli.common import setup_logging

DEFAULT_PORT = 8799
"""A fixed port, so that a saved config still points at the next `alertd sim`."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`sim` and its options: where to listen, and where to say so for a script."""
    sim = sub.add_parser(
        "sim", help="run the simulated exchanges for a real alertd; fill, move a balance, "
        "liquidate or drop by command", description="Prints a config that points alertd at "
        "a simulated DeltaDeFi and SoDEX on 127.0.0.1, then reads commands (fill, balance, "
        "league, position, liquidate, drop, status, help, quit) one a line, from a terminal "
        "or a pipe.")
    sim.add_argument("--port", type=_port, default=DEFAULT_PORT, metavar="N",
                     help=f"where both exchanges listen (default {DEFAULT_PORT}, so a saved "
                     "config keeps working; 0: any free port)")
    sim.add_argument("--port-file", metavar="FILE", help="write the port there once "
                     "listening (removed at exit), for scripts")
    sim.add_argument("-v", "--verbose", action="store_true", help="show the simulator's log")


def _port(text: str) -> int:
    if not text.isdigit() or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"'{text}' is not a port (0 to 65535; 0: any free one)")
    return int(text)


def cmd_sim(args: argparse.Namespace) -> int:
    from alertd.sim.console import run_sim

    setup_logging(args.verbose, level=logging.CRITICAL)
    return run_sim(port=args.port, port_file=args.port_file)
