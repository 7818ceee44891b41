"""The Apprise adapter: the only module that imports apprise.

A notifier is a name bound to one or more Apprise URLs. URLs that load no service are refused
at start-up (Apprise itself only logs them), and over-long texts are cut to what the service
accepts, with a marker, instead of being rejected by it.

apprise is imported when a notifier is built, not with this module, and then only with the
plugins the notifiers' URLs name (`load_plugins`): loading all ~190 is most of a command's
start-up and a third of the daemon's memory; `alertd check` checks URLs by scheme against
the installed plugins' sources without loading any (`check_schemes`).
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import logging
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Protocol
from urllib.parse import urlsplit

from alertd.common.errors import LoadError, Problem
from alertd.common.redact import redact_notifier_url, register_notifier_url, safe_text

if TYPE_CHECKING:
    import apprise

TRUNCATED = "\n[… truncated by alertd]"
READ_TIMEOUT = 30.0
"""Seconds a service may take to answer a post it has received. Apprise's own default (4 s)
is shorter than a slow webhook takes, and a post cut off after it was sent may well have been
delivered: every retry of it would be a duplicate in the trader's chat."""
CONNECT_TIMEOUT = 5.0


class DeliveryError(Exception):
    """The notifier could not deliver now; the outbox will try again."""


class OutcomeUnknown(DeliveryError):
    """The service had the request but gave no answer in time: it may have taken the alert,
    so the outbox does not send it again blindly."""


class TargetGone(DeliveryError):
    """The alert was for a URL no longer in the notifier (the config changed)."""


def target_of(url: str) -> str:
    """A URL's stable id in the outbox: a digest, so no token is written to the state file."""
    return hashlib.sha256(url.encode()).hexdigest()[:16]


class Notifier(Protocol):
    """Anything that can deliver an alert; raises DeliveryError when it could not. A notifier
    with several URLs lists their `targets`, and the outbox keeps one row per target."""

    name: str

    def send(self, title: str, body: str, severity: str) -> None: ...


class AppriseNotifier:
    """One named notifier: an Apprise object per URL, so that each URL is sent to, failed
    and retried alone (one URL down for a day must not resend to the others)."""

    def __init__(self, name: str, urls: tuple[str, ...], services: dict[str, apprise.Apprise],
                 body_limit: int, title_limit: int) -> None:
        self.name, self.urls = name, urls
        self._services = services
        self.targets = tuple(services)
        self._body_limit, self._title_limit = body_limit, title_limit

    def send(self, title: str, body: str, severity: str, target: str = "") -> None:
        """To the URL `target` names, or to every URL when it is empty."""
        if target and target not in self._services:
            raise TargetGone(f"that URL is no longer in notifier '{self.name}'")
        for key, service in self._services.items():
            if not target or key == target:
                self._send(service, title, body, severity)

    def probe(self, title: str, body: str) -> list[tuple[str, str | None]]:
        """Send a test message to each URL alone: (the URL without secrets, None if it was
        taken, else what went wrong in plain words), for `alertd notify-test`."""
        import apprise

        out: list[tuple[str, str | None]] = []
        logger = logging.getLogger("apprise")
        propagate, logger.propagate = logger.propagate, False
        try:
            for url in dict.fromkeys(self.urls):
                service = self._services[target_of(url)]
                with apprise.LogCapture(level=logging.DEBUG, fmt="%(message)s") as captured:
                    try:
                        self._send(service, title, body, "info")
                        problem = None
                    except DeliveryError as exc:
                        problem = plain_words(captured.getvalue(), str(exc))
                out.append((redact_notifier_url(url), problem))
        finally:
            logger.propagate = propagate
        return out

    def _send(self, service: apprise.Apprise, title: str, body: str, severity: str) -> None:
        import apprise

        title = _fit(title, self._title_limit, "…")
        room = self._body_limit
        if self._title_limit == 0 and room > 0:  # Apprise folds the title into the body
            room = max(len(TRUNCATED) + 1, room - len(title) - 2)
        body = _fit(body, room, TRUNCATED)
        started = time.monotonic()
        try:
            result = service.notify(body=body or " ", title=title,
                                    notify_type=apprise.NotifyType(severity))
        except Exception as exc:  # a plugin bug must not kill the worker
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        if not result:
            took = time.monotonic() - started
            slowest = max((getattr(s, "socket_read_timeout", 0) or 0 for s in service),
                          default=0)
            if slowest and took >= 0.9 * slowest:
                raise OutcomeUnknown(f"outcome unknown: no answer within {slowest:g} s of "
                                     "sending; the service may have taken it")
            raise DeliveryError("apprise reported failure")


_CAUSES = (
    (r"error=(401|403)\b|unauthori[sz]ed|forbidden|invalid (api )?(key|token)",
     "the service refused the credentials (HTTP 401/403): check the token or key in the URL"),
    (r"error=404\b|not found", "not found (HTTP 404): check the webhook path, channel or chat id"),
    (r"error=429\b|too many requests|rate", "the service is rate-limiting (HTTP 429): wait, "
     "or lower the notifier's rate"),
    (r"error=5\d\d\b", "the service failed (HTTP 5xx): try again later"),
    (r"ssl|certificate|tls", "TLS failed: the host's certificate is not trusted, or it does "
     "not speak https on that port"),
    (r"name or service not known|nodename nor servname|getaddrinfo|name resolution|resolve",
     "DNS: the host name does not resolve"),
    (r"connection refused", "connection refused: nothing listens at that host and port"),
    (r"timed out|timeout", "timed out: the host did not answer in time"),
    (r"smtp|authentication", "the mail server refused: check user, password and port"),
)


def plain_words(log: str, fallback: str) -> str:
    """What Apprise logged about a failed send, as a cause a person can act on."""
    lines = [line for line in log.splitlines() if re.search(r"error|fail|exception|refused|"
                                                              r"timed out|denied", line, re.I)]
    text = " ".join(" ".join(lines).split())
    for pattern, words in _CAUSES:
        if re.search(pattern, text, re.IGNORECASE):
            return f"{words} ({safe_text(text, 240)})"
    return safe_text(text, 240) or fallback


def _fit(text: str, limit: int, marker: str) -> str:
    if limit <= 0 or len(text) <= limit:
        return text
    return text[: max(0, limit - len(marker))] + marker


def build_notifiers(notifiers: Mapping[str, tuple[str, ...]], config_path: Path | str,
                    lines: Mapping[str, int] | None = None,
                    read_timeout: float = READ_TIMEOUT) -> dict[str, AppriseNotifier]:
    """Load every notifier's URLs; a URL that loads no Apprise service is a LoadError. Each
    service waits `read_timeout` for an answer unless its URL sets `rto=` itself."""
    import apprise

    # Apprise's own line about a failed send would double ours, and outlive a quiet setup
    logging.getLogger("apprise").setLevel(max(logging.ERROR, logging.getLogger().level))
    # memory storage: under systemd's ProtectHome/DynamicUser there is no home to write to
    asset = apprise.AppriseAsset(service_timeout=read_timeout + CONNECT_TIMEOUT + 5.0,
                                 storage_mode="memory")
    problems: list[Problem] = []
    out: dict[str, AppriseNotifier] = {}
    load_plugins(url for urls in notifiers.values() for url in urls)
    for name, urls in notifiers.items():
        line = (lines or {}).get(name, 1)
        services: dict[str, apprise.Apprise] = {}
        for i, url in enumerate(urls, 1):
            register_notifier_url(url)  # also when the URLs come from no config (demo --notify)
            service = apprise.Apprise(asset=asset)
            if not service.add(url):
                problems.append(Problem(config_path, line, (
                    f"notifier '{name}': URL #{i} ({redact_notifier_url(url)}) loads no Apprise "
                    "service; check its scheme and fields against the Apprise docs")))
                continue
            for plugin in service:
                query = urlsplit(url).query
                if "rto=" not in query:
                    plugin.socket_read_timeout = read_timeout
                if "cto=" not in query:
                    plugin.socket_connect_timeout = min(CONNECT_TIMEOUT, read_timeout)
            services[target_of(url)] = service
        if not services:
            continue
        plugins = [s for service in services.values() for s in service]
        body_limit = min((getattr(s, "body_maxlen", 0) or 0) for s in plugins) or 0
        title_limit = min((getattr(s, "title_maxlen", 0) or 0) for s in plugins) or 0
        out[name] = AppriseNotifier(name, urls, services, body_limit, title_limit)
    if problems:
        raise LoadError(problems)
    return out


_SCHEME = re.compile(r"\s*([a-z0-9]{1,32})://", re.IGNORECASE)
"""How Apprise reads a URL's scheme (its GET_SCHEMA_RE)."""
_DECLARED = re.compile(rb"protocol[ \t]*=[ \t]*(\([^)]*\)|[^\n#]+)")
_QUOTED = re.compile(rb"[\"']([a-z0-9]{1,32})[\"']", re.IGNORECASE)


def _plugin_sources() -> Iterator[tuple[str, str]]:
    """(module name under apprise.plugins, source file) of every installed plugin."""
    spec = importlib.util.find_spec("apprise")
    if spec is None or not spec.submodule_search_locations:
        return
    root = os.path.join(next(iter(spec.submodule_search_locations)), "plugins")
    with os.scandir(root) as entries:
        for entry in entries:
            if entry.name.startswith("_"):
                continue
            if entry.name.endswith(".py"):
                yield entry.name[:-3], entry.path
            elif entry.is_dir():
                with os.scandir(entry.path) as inner:
                    yield from ((entry.name, f.path) for f in inner if f.name.endswith(".py"))


@functools.cache
def plugin_modules() -> dict[str, str]:
    """Scheme -> the plugin module declaring it as a literal `protocol` or `secure_protocol`
    class attribute, read from the sources without importing them (~5 ms against ~0.3 s and
    ~20 MB for Apprise's load of every plugin). A scheme it misses costs the full load."""
    found: dict[str, str] = {}
    for module, path in _plugin_sources():
        with open(path, "rb") as file:
            text = file.read()
        for match in _DECLARED.finditer(text):
            start = match.start()
            if text[text.rfind(b"\n", 0, start) + 1:start].strip() in (b"", b"secure_"):
                for scheme in _QUOTED.findall(match.group(1)):
                    found.setdefault(scheme.decode().lower(), module)
    return found


def plugin_schemes() -> frozenset[str]:
    """The schemes the installed plugins declare literally (`plugin_modules`)."""
    return frozenset(plugin_modules())


def load_plugins(urls: Iterable[str]) -> None:
    """Have Apprise import only the plugins these URLs' schemes name, through its own
    `load_modules(path, name)` given a folder of just those names; a URL with any other
    scheme (a service's native https:// webhook) gets Apprise's load of every plugin."""
    from apprise.manager_plugins import NotificationManager

    manager = NotificationManager()
    modules = plugin_modules()
    schemes = [m.group(1).lower() if (m := _SCHEME.match(url)) else "" for url in urls]
    if not all(s in modules for s in schemes):
        manager.load_modules()
        return
    if manager:  # something is loaded: `in` asks without loading the rest
        schemes = [s for s in schemes if s not in manager]
    wanted = {modules[s] for s in schemes}
    if not wanted:
        return
    with tempfile.TemporaryDirectory(prefix="alertd-plugins-") as names:
        for module in wanted:
            Path(names, module).touch()
        manager.load_modules(path=names, name=NotificationManager.module_name_prefix)


def check_schemes(notifiers: Mapping[str, tuple[str, ...]], config_path: Path | str,
                  lines: Mapping[str, int] | None = None) -> None:
    """What `alertd check` asks of a notifier without loading Apprise: each URL has a scheme
    an installed plugin declares. A notifier with any other URL (a service's native
    `https://` webhook, a plugin declaring its scheme indirectly, a typo) gets the full
    Apprise load of `build_notifiers`, so an unknown scheme is still refused; the other fields
    of a URL are parsed only by that load, at start and by `alertd check --notifiers`."""
    known = plugin_schemes()
    rest: dict[str, tuple[str, ...]] = {}
    for name, urls in notifiers.items():
        schemes = [_SCHEME.match(url) for url in urls]
        if not all(m and m.group(1).lower() in known for m in schemes):
            rest[name] = urls
    if rest:
        build_notifiers(rest, config_path, lines)
