"""Which files under `--rules` are rule files: every `*.yaml`/`*.yml` but rule tests,
walking real folders only, so a folder named `x.yaml`, a symlink loop or a dangling link is
a problem named by path, never a crash or a hang."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

from alertd.common.errors import LoadError, Problem

MAX_RULE_FILES = 1_000
"""Rule files under one folder: past this it is a generator gone wrong, or the wrong folder."""
TEST_SUFFIXES = (".test.yaml", ".test.yml")
"""Rule tests (`alertd test`) live beside the rules under these names and are not rules."""


def rule_files(directory: Path) -> list[Path]:
    """The rule files under `directory`; a LoadError if any entry cannot be one (see
    `find_rule_files`)."""
    problems: list[Problem] = []
    files = find_rule_files(directory, problems)
    if problems:
        raise LoadError(problems)
    return files


def find_rule_files(directory: Path, problems: list[Problem]) -> list[Path]:
    """Every `*.yaml`/`*.yml` under `directory` but rule tests, walking real folders (not
    symlinked ones, so a link back up cannot loop), in path order.

    An entry with such a name that cannot be read as a file (a folder, a symlink loop or a
    dangling link, a pipe) is a problem rather than skipped in silence, as is a folder seen
    twice (a bind mount of a parent) or more than MAX_RULE_FILES files. Emacs lock links
    (`.#name.yaml`) are skipped.
    """
    found: list[Path] = []
    pending, seen = [directory], set()
    while pending:
        folder = pending.pop()
        try:
            info = folder.stat()
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError as exc:
            problems.append(Problem(folder, 1, f"cannot read folder: {exc.strerror or exc}"))
            continue
        if (info.st_dev, info.st_ino) in seen:
            problems.append(Problem(folder, 1, "this folder is already read under another "
                                    "name (a bind mount?); skipped"))
            continue
        seen.add((info.st_dev, info.st_ino))
        for entry in entries:
            path = Path(entry.path)
            with contextlib.suppress(OSError):  # gone since listed: nothing to read
                if entry.is_dir(follow_symlinks=False):
                    pending.append(path)
            if path.suffix not in (".yaml", ".yml") or entry.name.endswith(TEST_SUFFIXES) \
                    or entry.name.startswith(".#"):
                continue
            why = _not_a_file(path)
            if why:
                problems.append(Problem(path, 1, why))
                continue
            found.append(path)
            if len(found) > MAX_RULE_FILES:
                problems.append(Problem(directory, 1, f"more than {MAX_RULE_FILES} rule files "
                                        "in this folder; merge some"))
                return sorted(found[:MAX_RULE_FILES])
    return sorted(found)


def _not_a_file(path: Path) -> str:
    """Why a rule file's name cannot be read as one, or "" if it can."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "a symbolic link loop, not a rule file; remove the link"
        if exc.errno == errno.ENOENT and path.is_symlink():
            return f"a symbolic link to {os.readlink(path)}, which does not exist"
        return f"cannot read file: {exc.strerror or exc}"
    if stat.S_ISDIR(mode):
        return (f"a folder, not a rule file; rename it so it does not end in {path.suffix} "
                "(the files in it are read as usual)")
    if not stat.S_ISREG(mode):
        return "not a regular file (a pipe or device?); only files are read as rules"
    return ""
