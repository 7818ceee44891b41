"""`alertd silence add | list | expire`: silences written straight into the state file, where a
running alertd finds them at its next alert and within a second; a mistake is one line on
stderr and exit status 2, never a traceback."""

from __future__ import annotations

import argparse
import sqlite3
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path

from alertd.common.errors import LoadError
from alertd.common.suggest import did_you_mean
from alertd.common.timespec import duration
from alertd.config.load import Config, find_config, load_config
from alertd.domain.events import EVENT_KINDS, FieldType, fields_of
from alertd.shaping import silence as silences
from alertd.shaping.silence import LONGEST, OWN_RULE, Silence
from alertd.storage.engine import MissingDriver, exists, open_reader, postgres_module
from alertd.storage.location import Location, StateURL, state_location
from alertd.storage.lockfile import lock_holder
from alertd.storage.schema import LATEST, SchemaError, migrate, version

MISTAKE = 2
"""Exit status of a command line alertd refuses (argparse's own mistakes exit 2 as well)."""
COMMENT = 500
"""The longest comment, in characters: a note for whoever reads `silence list`."""


class Refused(Exception):
    """What was asked cannot be done; the message is the one line the user sees."""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """`silence` and its three actions, each taking --config or --state as `status` does."""
    silence = sub.add_parser(
        "silence", help="keep a rule's alerts from being sent for a while (add, list, expire)",
        description="Silences live in the state file; a running alertd applies them at its "
        "next alert. Every silence ends (--for, at most 90d).")
    actions = silence.add_subparsers(dest="action", required=True, metavar="add|list|expire")
    add = actions.add_parser("add", help="silence a rule's alerts, optionally on one account "
                             "and where event fields have given values")
    add.add_argument("--rule", required=True, metavar="NAME", help="the rule to silence")
    add.add_argument("--account", metavar="NAME", help="only the alerts of this account")
    add.add_argument("--match", action="append", default=[], metavar="FIELD=VALUE",
                     help="only alerts whose event has this value, compared as rules compare "
                     "(repeatable; all must hold), e.g. --match symbol=ADAUSDM")
    add.add_argument("--for", dest="duration", required=True, metavar="DURATION",
                     help="how long it lasts: 30m, 2h, 1d (at most 90d)")
    add.add_argument("--comment", default="", metavar="TEXT", help="why, for `silence list`")
    add.add_argument("--rules", metavar="DIR", help="the daemon's rules folder, to check "
                     "--rule, --account and --match against")
    listing = actions.add_parser("list", help="the active silences and how many alerts each "
                                 "held")
    listing.add_argument("--all", action="store_true", help="the ended ones too (kept 30 days)")
    expire = actions.add_parser("expire", help="end a silence now")
    expire.add_argument("id", metavar="ID", help="the silence's number, from `silence list`")
    for p in (add, listing, expire):
        p.add_argument("--config", metavar="FILE", help="config file naming the state file")
        p.add_argument("--state", metavar="FILE", help="the state file itself (under systemd: "
                       "/var/lib/alertd/state.db)")


def cmd_silence(args: argparse.Namespace) -> int:
    now = time.time()
    try:
        path, config = _where(args)
        if args.action == "list":
            return _list(path, now, args.all)
        if args.action == "add":
            return _add(path, args, config, now)
        return _expire(path, args.id, now)
    except Refused as exc:
        print(f"alertd silence: {exc}", file=sys.stderr)
        return MISTAKE


def _where(args: argparse.Namespace) -> tuple[Location, Config | None]:
    """The state file (--state, else the config's), and the config when there is one to read."""
    if args.state and not args.config:
        return state_location(args.state), None
    try:
        config = load_config(find_config(args.config), secrets=False)
    except LoadError as exc:
        raise Refused(str(exc.problems[0])) from None
    return (state_location(args.state) if args.state else config.state_path), config


def _open_postgres(url: StateURL) -> sqlite3.Connection:
    """The state database for writing: set up by alertd already, of this version."""
    try:
        db = open_reader(url)
    except MissingDriver as exc:
        raise Refused(str(exc)) from None
    except sqlite3.Error as exc:
        raise Refused(f"{url}: cannot use the state database ({exc})") from None
    have = postgres_module().version(db)
    if have != LATEST:
        db.close()
        raise Refused(f"{url}: " + ("alertd has not set this database up yet; it does when it "
                                    "first runs" if have == 0 else
                                    f"the database is of version {have}, this alertd's is "
                                    f"{LATEST}; run this command with the alertd running on it"))
    return db


def _open(path: Location) -> sqlite3.Connection:
    """The state file for writing; never created here (alertd creates it, owned by the user
    it runs as), and brought to this version only when no older alertd is running on it."""
    if isinstance(path, StateURL):
        return _open_postgres(path)
    if not path.is_file():
        raise Refused(f"{path}: no state file yet; alertd creates it when it first runs "
                      "(or pass --state FILE)")
    try:
        db = sqlite3.connect(str(path), isolation_level=None, timeout=10)
        try:
            have = version(db)
            if have == 0:
                raise Refused(f"{path}: not an alertd state file; check --state or the "
                              "config's `state:`")
            holder = lock_holder(path)
            if have < LATEST and holder:
                raise Refused(f"{path}: the alertd running on it (pid {holder}) is older than "
                              "this command; restart it on this version first")
            migrate(db)
        except BaseException:
            db.close()
            raise
    except SchemaError as exc:
        raise Refused(f"{path}: {exc}") from None
    except sqlite3.Error as exc:
        raise Refused(f"{path}: not an alertd state file ({exc})") from None
    return db


def _add(path: Location, args: argparse.Namespace, config: Config | None, now: float) -> int:
    """Everything given is checked before the state file is opened."""
    if args.rule == OWN_RULE:
        raise Refused("alertd's own notices (rule 'alertd') are never silenced")
    known, checked = _fields(args.rule, args.account, args.rules, config)
    matchers = [_matcher(text, known) for text in args.match]
    seconds = duration(args.duration)
    if seconds is None or seconds > LONGEST:
        raise Refused(f"--for: '{args.duration}' is not a duration of at most 90d (e.g. 30m, "
                      "2h, 7d); every silence ends")
    comment = " ".join(args.comment.split())
    if len(comment) > COMMENT:
        raise Refused(f"--comment: {len(comment)} characters; at most {COMMENT}")
    with closing(_open(path)) as db:
        made = silences.add(db, args.rule, args.account, matchers, seconds, comment, now)
    print(f"silence {made.id} added: {made.describe()}, until {_utc(made.expires)} "
          f"({_span(seconds)}); a running alertd applies it to its next alert")
    if not checked:
        print("note: --rule was not checked; pass --rules DIR to check it against the rules",
              file=sys.stderr)
    return 0


def _fields(rule_name: str, account: str | None, rules_dir: str | None,
            config: Config | None) -> tuple[dict[str, FieldType], bool]:
    """The fields --match may name (the rule's kind's, or any kind's when the rules are not
    at hand), after checking the rule and the account; and whether the rule was checked."""
    accounts = [a.name for a in config.accounts] if config is not None else None
    if account is not None and accounts is not None and account not in accounts:
        raise Refused(f"unknown account '{account}'{did_you_mean(account, accounts)}; "
                      f"accounts are: {', '.join(accounts)}")
    if rules_dir is None:
        return {k: t for kind in EVENT_KINDS for k, t in fields_of(kind).items()}, False
    from alertd.rules.load import load_rules

    try:
        rules = load_rules(Path(rules_dir), None)
    except LoadError as exc:
        raise Refused(f"--rules: {exc.problems[0]}") from None
    rule = rules.by_name.get(rule_name)
    if rule is None:
        names = list(rules.by_name)
        shown = ", ".join(names[:30]) + (f" (and {len(names) - 30} more)" if len(names) > 30
                                         else "")
        raise Refused(f"unknown rule '{rule_name}'{did_you_mean(rule_name, names)}; rules "
                      f"are: {shown}")
    if account is not None and rule.accounts is not None and account not in rule.accounts:
        raise Refused(f"rule '{rule_name}' watches only accounts: "
                      f"{', '.join(sorted(rule.accounts))}")
    return fields_of(rule.on), True


def _matcher(text: str, known: dict[str, FieldType]) -> tuple[str, str]:
    name, sep, value = text.partition("=")
    name, value = name.strip(), " ".join(value.split())
    if not sep or not name:
        raise Refused(f"--match '{text}': write FIELD=VALUE, e.g. symbol=ADAUSDM")
    if name not in known:
        raise Refused(f"--match: no event field '{name}'{did_you_mean(name, known)}; fields "
                      f"are: {', '.join(known)}")
    if known[name] is FieldType.NUMBER:
        try:
            Decimal(value)
        except InvalidOperation:
            raise Refused(f"--match {name}: '{value}' is not a number") from None
    if known[name] is FieldType.BOOL and value.casefold() not in ("yes", "no", "true", "false"):
        raise Refused(f"--match {name}: '{value}' is not yes or no")
    return name, value


def _expire(path: Location, text: str, now: float) -> int:
    number = text.removeprefix("#")
    if not number.isdigit():
        raise Refused(f"'{text}' is not a silence number; `alertd silence list` shows them")
    with closing(_open(path)) as db:
        was = silences.expire(db, int(number), now)
    if was is None:
        raise Refused(f"no silence {number}; `alertd silence list --all` shows them")
    if was.expires <= now:
        print(f"silence {was.id} had already ended, at {_utc(was.expires)}; it silenced "
              f"{was.silenced} alerts")
        return 0
    print(f"silence {was.id} expired: {was.describe()}; it silenced {was.silenced} alerts")
    return 0


def _list(path: Location, now: float, everything: bool) -> int:
    if not exists(path):
        raise Refused(f"{path}: no state file yet; has alertd run with this config?")
    try:
        db = open_reader(path)
        try:
            found = silences.every(db) if everything else silences.active(db, now)
        finally:
            db.close()
    except MissingDriver as exc:
        raise Refused(str(exc)) from None
    except sqlite3.Error as exc:
        raise Refused(f"{path}: not an alertd state file ({exc})") from None
    print(f"silences ({'all kept' if everything else 'active'}):")
    for s in found:
        print(line(s, now))
    if not found:
        print("  none")
    return 0


def line(s: Silence, now: float) -> str:
    """One silence as `list` and `status` show it."""
    when = (f"until {_utc(s.expires)} ({_span(s.expires - now)} left)" if s.expires > now
            else f"ended {_utc(s.expires)}")
    scope = ", ".join(([f"account {s.account}"] if s.account else [])
                      + [f"{k}={v}" for k, v in s.matchers])
    return (f"  #{s.id:<3} {s.rule}{f' [{scope}]' if scope else ''} {when}, {s.silenced} "
            "silenced" + (f'; "{s.comment}"' if s.comment else ""))


def _utc(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _span(seconds: float) -> str:
    """`2h`, `1h 59m`, `3d 4h`, `45s`: the two largest units."""
    left = round(seconds)
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if left >= size or (unit == "s" and not parts):
            parts.append(f"{left // size}{unit}")
            left %= size
    return " ".join(parts[:2])
