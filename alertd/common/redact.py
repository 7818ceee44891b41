"""Keep secrets out of logs, exceptions and alerts by construction.

A DeltaDeFi API key travels in the stream URL's query string, so URLs are held as `SecretURL`,
whose every printable form drops the query and password; only the transport asks for the
real one. The log formatter also scrubs every registered secret as a second line of defence.
"""

from __future__ import annotations

import logging
import re
import threading
from urllib.parse import urlsplit, urlunsplit

MASK = "***"
_QUERY_SECRET = re.compile(r"(?i)((?:api[_-]?key|token|secret|password|pass)=)[^&\s'\"]+")


def redact_url(url: str) -> str:
    """The URL without query string, fragment or password: safe to print."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _QUERY_SECRET.sub(r"\1" + MASK, url.split("?", 1)[0])
    netloc = parts.netloc
    if "@" in netloc:
        userinfo, host = netloc.rsplit("@", 1)
        user = userinfo.split(":", 1)[0]
        netloc = f"{user}:{MASK}@{host}" if ":" in userinfo else f"{MASK}@{host}"
    query = MASK if parts.query else ""
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def redact_notifier_url(url: str) -> str:
    """A notifier URL shown without its tokens: Apprise URLs carry them in the user part,
    the host part (`tgram://BOT_TOKEN/CHAT`) and the path (`slack://T/B/C`), so only the
    scheme and a real host name (one with a dot, or a port) are kept."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = parts.port
    except ValueError:
        return url.split("://", 1)[0] + "://" + MASK
    shown = host if "." in host or host == "localhost" else MASK
    if port and shown != MASK:
        shown += f":{port}"
    return f"{parts.scheme}://{shown}" + (f"/{MASK}" if parts.path.strip("/") else "/")


def register_notifier_url(url: str) -> None:
    """The URL and every token-like part of it (no dot, 8 characters or more) are secrets:
    a service's own error text may quote a token on its own (Telegram's bot path)."""
    register_secret(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    pieces = [parts.netloc.rsplit("@", 1)[-1], *parts.netloc.rsplit("@", 1)[0].split(":"),
              *parts.path.split("/"), *(v for _, _, v in
                                        (q.partition("=") for q in parts.query.split("&")))]
    for piece in pieces:
        if len(piece) >= 8 and "." not in piece:
            register_secret(piece)


class SecretURL:
    """A URL that contains a secret; str() and repr() show only the redacted form."""

    __slots__ = ("_url",)

    def __init__(self, url: str) -> None:
        self._url = url

    def reveal(self) -> str:
        """The full URL, for the transport only."""
        return self._url

    def __str__(self) -> str:
        return redact_url(self._url)

    def __repr__(self) -> str:
        return f"SecretURL({redact_url(self._url)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretURL) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)


class _Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            with self._lock:
                if secret not in self._secrets:
                    self._secrets = tuple(sorted({*self._secrets, secret}, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        return _QUERY_SECRET.sub(r"\1" + MASK, text)


SECRETS = _Registry()


def register_secret(secret: str | None) -> None:
    """Remember a secret so that the log formatter never prints it."""
    SECRETS.add(secret)


def scrub(text: str) -> str:
    """Text with every registered secret and every `api_key=` style value masked."""
    return SECRETS.scrub(text)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def safe_text(value: object, limit: int = 300) -> str:
    """Text from outside (an exchange's error, a frame's field) made safe to log or alert:
    lone surrogates and control characters escaped, secrets masked, length bounded."""
    text = value if isinstance(value, str) else repr(value)
    text = text[: limit * 2].encode("utf-8", "backslashreplace").decode("utf-8")
    text = _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)
    return scrub(text if len(text) <= limit else text[: limit - 1] + "…")


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then scrubs secrets from the whole line, tracebacks included; a lone
    surrogate from outside is escaped so that writing the line can never fail."""

    def format(self, record: logging.LogRecord) -> str:
        line = scrub(super().format(record))
        return line.encode("utf-8", "backslashreplace").decode("utf-8")
