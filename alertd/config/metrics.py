"""The `metrics:` key: where alertd serves Prometheus metrics, if anywhere.

Off by default, and on the loopback interface unless the operator names another host: the
metrics name accounts, rules and notifiers, which are nobody else's business.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

from alertd.common.errors import Problem
from alertd.common.yamlsrc import LDict

LOOPBACK = "127.0.0.1"
_HOSTNAME = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                       r"(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_FORMS = ("a port (9464, on 127.0.0.1) or host:port (127.0.0.1:9464, [::1]:9464, "
          "0.0.0.0:9464 for every interface)")


@dataclass(frozen=True)
class MetricsSpec:
    """The address the metrics endpoint listens on."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def metrics_spec(path: Path, data: LDict, problems: list[Problem]) -> MetricsSpec | None:
    """The `metrics:` value, checked; None when absent or empty. It is not expanded: an
    expanded value is masked as a secret in every log line, and an address is none."""
    value = data.get("metrics")
    if value is None:
        return None
    line = data.line_of("metrics")
    spec = _parse(value)
    if isinstance(spec, str):
        problems.append(Problem(path, line, f"'metrics' {spec}; write {_FORMS}"))
        return None
    if find_spec("prometheus_client") is None:
        problems.append(Problem(path, line, "'metrics' needs the prometheus-client library, "
                                "which is not installed: pip install \"alertd[metrics]\""))
        return None
    return spec


def _parse(value: object) -> MetricsSpec | str:
    """The address, or what is wrong with it."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return "is not an address"
    text = str(value).strip()
    host, colon, port = text.rpartition(":")
    if not colon:
        host = LOOPBACK
    elif not host:
        return f"'{text}' has no host"
    elif host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if not _ip(host, 6):
            return f"'{host}' is not an IPv6 address"
    elif ":" in host:
        return f"'{text}': put an IPv6 address in brackets"
    elif not _ip(host, 4) and (not _HOSTNAME.match(host) or re.fullmatch(r"[\d.]+", host)):
        return f"'{host}' is not a host name or address"
    if not port.isdigit() or not 1 <= int(port) <= 65535:
        return f"'{text}': the port is a number from 1 to 65535"
    return MetricsSpec(host, int(port))


def _ip(text: str, version: int) -> bool:
    try:
        return ipaddress.ip_address(text).version == version
    except ValueError:
        return False
