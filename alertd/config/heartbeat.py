"""The `heartbeat:` block: where alertd proves it is alive, and how often."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from alertd.common.errors import Problem
from alertd.common.expand import Expander
from alertd.common.redact import register_notifier_url
from alertd.common.timespec import duration
from alertd.common.yamlsrc import LDict, unknown_keys

SHORTEST, LONGEST = 10.0, 24 * 3600.0


@dataclass(frozen=True)
class HeartbeatSpec:
    """A push URL pinged every `every` seconds while alertd is healthy."""

    url: str
    every: float = 60.0


def heartbeat_spec(path: Path, data: LDict, expand: Expander,
                   problems: list[Problem]) -> HeartbeatSpec | None:
    """The `heartbeat:` block, checked; None when absent. Its URL is a secret: a push URL's
    path is all it takes to ping a switch, so it is masked in every log line."""
    block = data.get("heartbeat")
    if block is None:
        return None
    line = data.line_of("heartbeat")
    if not isinstance(block, LDict) or "url" not in block:
        problems.append(Problem(path, line, "'heartbeat' is a mapping with 'url' (a push URL "
                                "such as https://hc-ping.com/<uuid>) and optionally 'every'"))
        return None
    unknown_keys(block, ("url", "every"), path, problems)
    url = expand(block["url"], block.line_of("url"))
    parts = urlsplit(url) if isinstance(url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        problems.append(Problem(path, block.line_of("url"),
                                "'heartbeat.url' is an http:// or https:// URL"))
        return None
    register_notifier_url(url)
    every = duration(block.get("every", 60))
    if every is None or not SHORTEST <= every <= LONGEST:
        problems.append(Problem(path, block.line_of("every") if "every" in block else line,
                                f"'heartbeat.every' is a duration from {SHORTEST:g} s to 24 h, "
                                "such as 60s or 5m"))
        return None
    return HeartbeatSpec(url, every)
