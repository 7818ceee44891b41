"""One writer per state file: a `.lock` file beside it, locked with flock and holding the pid.

Two alertd on one file would send every alert twice; the lock is released when the process
ends, however it ends, so a crash never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class StateLocked(Exception):
    """Another process holds the state file; two writers would send every alert twice."""


def lock_state(path: Path) -> int:
    """Take the state file's lock (a `.lock` file beside it, holding our pid) or raise
    StateLocked naming the process that has it. Released when the process ends, however."""
    fd = os.open(f"{path}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    holder = _holder(fd)
    if holder is not None:
        os.close(fd)
        raise StateLocked(f"another alertd (pid {holder}) is using the state file {path}; "
                          "stop it first, or give this one a 'state:' of its own")
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def lock_holder(path: Path) -> str | None:
    """The pid of the alertd holding the state file, or None if none runs on it."""
    try:
        fd = os.open(f"{path}.lock", os.O_RDONLY)
    except OSError:
        return None
    try:
        holder = _holder(fd)
        if holder is None:
            fcntl.flock(fd, fcntl.LOCK_UN)
        return holder
    finally:
        os.close(fd)


def _holder(fd: int) -> str | None:
    """Lock `fd` and return None, or return the pid written by whoever holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return os.pread(fd, 32, 0).decode("ascii", "replace").strip() or "unknown"
    return None
