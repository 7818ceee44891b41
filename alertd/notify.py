"""The Apprise adapter: the only module that imports apprise.

A notifier is a name bound to one or more Apprise URLs. URLs that load no service are refused
at start-up (Apprise itself only logs them), and over-long texts are cut to what the service
accepts, with a marker, instead of being rejected by it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

import apprise

from alertd.errors import LoadError, Problem
from alertd.redact import redact_url

TRUNCATED = "\n[… truncated by alertd]"
SEND_TIMEOUT = 15.0


class DeliveryError(Exception):
    """The notifier could not deliver now; the outbox will try again."""


class Notifier(Protocol):
    """Anything that can deliver an alert; raises DeliveryError when it could not."""

    name: str

    def send(self, title: str, body: str, severity: str) -> None: ...


class AppriseNotifier:
    """One named notifier backed by an Apprise object with all of its URLs."""

    def __init__(self, name: str, urls: tuple[str, ...], service: apprise.Apprise,
                 body_limit: int, title_limit: int) -> None:
        self.name, self.urls = name, urls
        self._apprise = service
        self._body_limit, self._title_limit = body_limit, title_limit

    def send(self, title: str, body: str, severity: str) -> None:
        title = _fit(title, self._title_limit, "…")
        room = self._body_limit
        if self._title_limit == 0 and room > 0:  # Apprise folds the title into the body
            room = max(len(TRUNCATED) + 1, room - len(title) - 2)
        body = _fit(body, room, TRUNCATED)
        try:
            result = self._apprise.notify(body=body or " ", title=title,
                                          notify_type=apprise.NotifyType(severity))
        except Exception as exc:  # a plugin bug must not kill the worker
            raise DeliveryError(f"{type(exc).__name__}: {exc}") from None
        if not result:
            failed = [redact_url(r.url) for r in result if not r]
            raise DeliveryError("apprise reported failure" + (f" for {', '.join(failed)}"
                                                              if failed else ""))


def _fit(text: str, limit: int, marker: str) -> str:
    if limit <= 0 or len(text) <= limit:
        return text
    return text[: max(0, limit - len(marker))] + marker


def build_notifiers(notifiers: Mapping[str, tuple[str, ...]], config_path: Path | str,
                    lines: Mapping[str, int] | None = None,
                    timeout: float = SEND_TIMEOUT) -> dict[str, AppriseNotifier]:
    """Load every notifier's URLs; a URL that loads no Apprise service is a LoadError."""
    logging.getLogger("apprise").setLevel(logging.WARNING)
    # memory storage: under systemd's ProtectHome/DynamicUser there is no home to write to
    asset = apprise.AppriseAsset(service_timeout=timeout, storage_mode="memory")
    problems: list[Problem] = []
    out: dict[str, AppriseNotifier] = {}
    for name, urls in notifiers.items():
        line = (lines or {}).get(name, 1)
        service = apprise.Apprise(asset=asset)
        for i, url in enumerate(urls, 1):
            if not service.add(url):
                problems.append(Problem(config_path, line, (
                    f"notifier '{name}': URL #{i} ({redact_url(url)}) loads no Apprise service; "
                    "check its scheme and fields against the Apprise docs")))
        if len(service) == 0:
            continue
        body_limit = min((getattr(s, "body_maxlen", 0) or 0) for s in service) or 0
        title_limit = min((getattr(s, "title_maxlen", 0) or 0) for s in service) or 0
        out[name] = AppriseNotifier(name, urls, service, body_limit, title_limit)
    if problems:
        raise LoadError(problems)
    return out
