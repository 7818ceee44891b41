"""The agent's config file: accounts to watch, notifiers to send through, where state lives.

Secrets are written as `${NAME}`: taken from the environment, or from
`$CREDENTIALS_DIRECTORY/NAME` (systemd's LoadCredential), so they need not sit in the file.
"""

from __future__ import annotations

import dataclasses
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from alertd.common.errors import LoadError, Problem
from alertd.common.expand import Expander
from alertd.common.redact import register_notifier_url
from alertd.common.yamlsrc import LDict, load_yaml, unknown_keys
from alertd.config.heartbeat import HeartbeatSpec, heartbeat_spec
from alertd.config.metrics import MetricsSpec, metrics_spec
from alertd.delivery.ratelimit import Rate, RateError, parse_rate, service_rate
from alertd.domain.account import Account
from alertd.domain.quiet import Quiet, QuietError, parse_quiet
from alertd.exchanges import EXCHANGES
from alertd.storage.location import Location, state_location

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TOP_KEYS = ("accounts", "notifiers", "state", "node", "stream_down_after", "delivery_max_age",
             "heartbeat", "metrics")
MAX_ACCOUNTS = 100
"""Accounts in one config: each holds a socket or two and their threads for as long as it runs."""
MAX_NOTIFIERS = 100
MAX_URLS = 50
"""URLs per notifier: each alert is one outbox row per URL."""


UNSET: Any = "service default"


@dataclass(frozen=True)
class NotifierOptions:
    """A notifier's `rate` (UNSET: each URL's service default; None: unlimited) and
    `quiet` hours."""

    rate: Rate | None = UNSET
    quiet: Quiet | None = None

    def rate_for(self, url: str) -> Rate | None:
        return service_rate(url) if self.rate is UNSET else self.rate


@dataclass(frozen=True)
class Config:
    """Everything the agent needs besides the rules."""

    path: Path
    accounts: tuple[Account, ...]
    notifiers: dict[str, tuple[str, ...]]
    state_path: Location
    """An SQLite file, or a PostgreSQL StateURL (`state: postgresql://...`)."""
    stream_down_after: float = 120.0
    delivery_max_age: float = 24 * 3600.0
    notifier_lines: dict[str, int] = field(default_factory=dict, compare=False)
    notifier_options: dict[str, NotifierOptions] = field(default_factory=dict)
    warnings: tuple[str, ...] = field(default=(), compare=False)
    state_line: int = field(default=1, compare=False)
    heartbeat: HeartbeatSpec | None = None
    metrics: MetricsSpec | None = None
    node: str | None = None
    """This alertd's name among those sharing a PostgreSQL state (default: host:pid)."""


def config_candidates(env: Mapping[str, str] | None = None) -> list[Path]:
    """Where the config is looked for when --config is not given, in order."""
    env = os.environ if env is None else env
    xdg = env.get("XDG_CONFIG_HOME") or str(Path.home() / ".config")
    return [Path("alertd.yaml"), Path(xdg) / "alertd" / "alertd.yaml",
            Path("/etc/alertd/alertd.yaml")]


def find_config(explicit: str | None) -> Path:
    if explicit:
        path = Path(explicit)
        if not path.is_file():
            raise LoadError([Problem(path, 1, "config file not found; check the --config path")])
        return path
    for path in config_candidates():
        if path.is_file():
            return path
    looked = ", ".join(str(p) for p in config_candidates())
    raise LoadError([Problem("alertd.yaml", 1, f"no config file found (looked in {looked}); "
                             "create one as in the README or pass --config FILE")])


def default_state_path(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    if env.get("STATE_DIRECTORY"):
        return Path(env["STATE_DIRECTORY"].split(":")[0]) / "state.db"
    return Path.home() / ".local" / "state" / "alertd" / "state.db"


def load_config(path: Path, env: Mapping[str, str] | None = None,
                secrets: bool = True) -> Config:
    """Read and check the config file; every problem is reported with its line.

    `secrets=False` tolerates unset ${NAME}s, for commands that connect and send nothing.
    """
    env = os.environ if env is None else env
    data = load_yaml(path)
    problems: list[Problem] = []
    if not isinstance(data, LDict):
        raise LoadError([Problem(path, getattr(data, "line", 1),
                                 "the config must be a mapping with 'accounts' and 'notifiers'")])
    expand = Expander(path, env, problems, secrets)
    unknown_keys(data, _TOP_KEYS, path, problems)
    accounts = _accounts(path, data, expand, problems)
    notifiers, notifier_lines, options = _notifiers(path, data, expand, problems)
    state = data.get("state")
    state_path = (state_location(str(expand(state, data.line_of("state")))) if state
                  else default_state_path(env))
    node = data.get("node")
    if node is not None and (not isinstance(node, str) or not node.strip()):
        problems.append(Problem(path, data.line_of("node"), "node: must be a name, e.g. "
                                "node: alertd-b"))
        node = None
    down_after = _seconds(path, data, "stream_down_after", 120.0, problems)
    max_age = _seconds(path, data, "delivery_max_age", 86400.0, problems)
    heartbeat = heartbeat_spec(path, data, expand, problems)
    metrics = metrics_spec(path, data, problems)
    if problems:
        raise LoadError(problems)
    return Config(path=path, accounts=tuple(accounts), notifiers=notifiers, state_path=state_path,
                  stream_down_after=down_after, delivery_max_age=max_age,
                  notifier_lines=notifier_lines, notifier_options=options,
                  warnings=_exposure(path, data),
                  state_line=data.line_of("state"), heartbeat=heartbeat,
                  metrics=metrics, node=node)


def _exposure(path: Path, data: LDict) -> tuple[str, ...]:
    """A warning when others can read a config that holds a secret written out in full."""
    try:
        readable = path.stat().st_mode & 0o004
    except OSError:
        return ()
    if not readable:
        return ()
    literal = [f"line {item.line_of('api_key')}" for item in data.get("accounts") or ()
               if isinstance(item, dict) and isinstance(item.get("api_key"), str)
               and "${" not in item["api_key"]]
    notifiers = data.get("notifiers")
    if isinstance(notifiers, LDict):
        for name, spec in notifiers.items():
            urls = spec.get("urls") if isinstance(spec, dict) else spec
            if any(isinstance(u, str) and "${" not in u and ("@" in u or u.count("/") > 3)
                   for u in (urls if isinstance(urls, list) else [urls])):
                literal.append(f"line {notifiers.line_of(name)}")
    if not literal:
        return ()
    return (f"{path} is readable by every user and holds secrets ({', '.join(literal)}); "
            f"run chmod 600 {path}, or write them as ${{NAME}} and pass them in the environment "
            "or as systemd credentials",)


def _seconds(path: Path, data: LDict, key: str, default: float, problems: list[Problem]) -> float:
    value = data.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal) or value <= 0:
        problems.append(Problem(path, data.line_of(key), f"'{key}' is a number of seconds > 0"))
        return default
    return float(value)


def _accounts(path: Path, data: LDict, expand: Expander,
              problems: list[Problem]) -> list[Account]:

    raw = data.get("accounts")
    if not isinstance(raw, list) or not raw:
        problems.append(Problem(path, data.line_of("accounts"),
                                "'accounts' must be a non-empty list of accounts to watch"))
        return []
    out: list[Account] = []
    seen: set[str] = set()
    for i, item in enumerate(raw):
        line = raw.line_of(i)
        if i == MAX_ACCOUNTS:
            problems.append(Problem(path, line, f"this is account number {MAX_ACCOUNTS + 1}; "
                                    f"alertd watches at most {MAX_ACCOUNTS}"))
            break
        if not isinstance(item, LDict):
            problems.append(Problem(path, line, "each account is a mapping with name and exchange"))
            continue
        allowed = ("name", "exchange", "api_key", "url", "user", "markets", "rest_url")
        unknown_keys(item, allowed, path, problems, "account")
        name = item.get("name")
        if not isinstance(name, str) or not _NAME.match(name):
            problems.append(Problem(path, item.line_of("name"),
                                    "each account needs a 'name' (letters, digits, . _ -)"))
            continue
        if name in seen:
            problems.append(Problem(path, item.line_of("name"), f"duplicate account name '{name}'"))
        seen.add(name)
        exchange = item.get("exchange")
        if exchange not in EXCHANGES:
            problems.append(Problem(path, item.line_of("exchange"), f"account '{name}': "
                                    f"exchange must be one of {', '.join(EXCHANGES)}"))
            continue
        url = expand(item.get("url", EXCHANGES[exchange].default_url), item.line_of("url"))
        if not isinstance(url, str) or not url.startswith(("ws://", "wss://")):
            problems.append(Problem(path, item.line_of("url"),
                                    f"account '{name}': url must start with wss:// (or ws://)"))
            continue
        if "?" in url:
            problems.append(Problem(path, item.line_of("url"), f"account '{name}': put the key in "
                                    "'api_key', not in the url's query string"))
            continue
        rest = item.get("rest_url")
        if rest is not None and (not isinstance(rest, str)
                                 or not rest.startswith(("https://", "http://"))):
            problems.append(Problem(path, item.line_of("rest_url"), f"account '{name}': "
                                    "rest_url must start with https:// (or http://)"))
            rest = None
        account = EXCHANGES[exchange].parse_account(path, item, name, url, expand, problems)
        out.append(dataclasses.replace(account, rest_url=rest))
    return out


def _notifiers(path: Path, data: LDict, expand: Expander, problems: list[Problem]
               ) -> tuple[dict[str, tuple[str, ...]], dict[str, int], dict[str, NotifierOptions]]:
    """`name: URL`, `name: [URL, ...]`, or `name: {urls: ..., rate: 20/min, quiet: {...}}`."""
    raw = data.get("notifiers")
    if not isinstance(raw, LDict) or not raw:
        problems.append(Problem(path, data.line_of("notifiers"), "'notifiers' must map names to "
                                "Apprise URLs, e.g. trading: \"slack://T/B/C\""))
        return {}, {}, {}
    out: dict[str, tuple[str, ...]] = {}
    options: dict[str, NotifierOptions] = {}
    for n, (name, spec) in enumerate(raw.items()):
        line = raw.line_of(name)
        if n == MAX_NOTIFIERS:
            problems.append(Problem(path, line, f"this is notifier number {MAX_NOTIFIERS + 1}; "
                                    f"alertd sends through at most {MAX_NOTIFIERS}"))
            break
        urls = spec.get("urls") if isinstance(spec, LDict) else spec
        if isinstance(urls, str):
            urls = [urls]
        if isinstance(urls, list) and len(urls) > MAX_URLS:
            problems.append(Problem(path, line, f"notifier '{name}' has {len(urls)} URLs; "
                                    f"alertd sends to at most {MAX_URLS} per notifier"))
            continue
        if (not isinstance(name, str) or not isinstance(urls, list) or not urls
                or not all(isinstance(u, str) and "://" in u for u in urls)):
            problems.append(Problem(path, line, f"notifier '{name}' must be an Apprise URL "
                                    "(scheme://...), a list of them, or a mapping with 'urls' "
                                    "(and 'rate', 'quiet')"))
            continue
        if isinstance(spec, LDict):
            options[name] = _notifier_options(path, name, spec, problems)
        expanded = tuple(expand(u, line) for u in urls)
        for url in expanded:
            register_notifier_url(url)
        out[name] = expanded
    return out, {name: raw.line_of(name) for name in out}, options


def _notifier_options(path: Path, name: str, spec: LDict,
                      problems: list[Problem]) -> NotifierOptions:
    for key in spec:
        if key not in ("urls", "rate", "quiet"):
            problems.append(Problem(path, spec.line_of(key), f"notifier '{name}': unknown key "
                                    f"'{key}'; expected one of: urls, rate, quiet"))
    rate, quiet = UNSET, None
    try:
        if "rate" in spec:
            rate = parse_rate(spec["rate"])
    except RateError as exc:
        problems.append(Problem(path, spec.line_of("rate"), f"notifier '{name}': {exc}"))
    try:
        if "quiet" in spec:
            quiet = parse_quiet(spec["quiet"])
    except QuietError as exc:
        problems.append(Problem(path, spec.line_of("quiet"), f"notifier '{name}': {exc}"))
    return NotifierOptions(rate, quiet)
