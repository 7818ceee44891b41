"""Keep secrets out of logs, exceptions and alerts by construction.

A DeltaDeFi API key travels in the stream URL's query string, so URLs are held as `SecretURL`,
whose every printable form drops the query and password; only the transport asks for the
real one. As a second line of defence every log record, from any logger and whatever handler
takes it, is scrubbed of registered secrets and has its control characters escaped when it
is made (`install_log_redaction`), and alertd's own formatter scrubs the line again.
"""

from __future__ import annotations

import logging
import re
import threading
from typing import Any
from urllib.parse import unquote, urlsplit, urlunsplit

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
    """The URL and every part that may be a token (userinfo, path segments, query values, and
    a host that is no host name, as in `tgram://BOT_TOKEN/CHAT`) are secrets however short or
    dotted: urllib3 logs the path alone, a service's error may quote a token. Parts of 8
    characters or more are masked anywhere; shorter ones where they stand as a URL's part
    (after `/`, `@` or `=`, or as `:password@`), so that `03:20:05` or `rules/a.yaml` keep
    their text when a notifier's path is `/20` or `/a`."""
    register_secret(url)
    try:
        parts = urlsplit(url)
    except ValueError:
        return
    userinfo, _, host = parts.netloc.rpartition("@")
    pieces = [*userinfo.split(":"), *parts.path.split("/"),
              *(v for _, _, v in (q.partition("=") for q in parts.query.split("&")))]
    name, _, port = host.partition(":")
    if name and "." not in name and name != "localhost" and not port.isdigit() \
            and not host.startswith("["):
        pieces += [host, name, port]
    for piece in {p for raw in pieces if raw for p in (raw, unquote(raw))}:
        SECRETS.add_part(piece)
        if len(piece) >= 8:
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
        return f"{type(self).__name__}({redact_url(self._url)!r})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other._url == self._url  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return hash(self._url)


_TOKEN_CHAR = r"[\w.~%+-]"
_URL_AFTER = r"(?=[/?&#@:;,\s\"'()\[\]{}<>|]|$)"
SHORT_ANYWHERE = 4
"""A URL part shorter than this is masked only inside a URL, even in a recording."""


class _Registry:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._secrets: tuple[str, ...] = ()
        self._parts: frozenset[str] = frozenset()
        self._in_url: re.Pattern[str] | None = None
        self._standalone: re.Pattern[str] | None = None

    def add(self, secret: str | None) -> None:
        if secret and len(secret) >= 4:
            with self._lock:
                if secret not in self._secrets:
                    self._secrets = tuple(sorted({*self._secrets, secret}, key=len, reverse=True))

    def add_part(self, part: str) -> None:
        """A notifier URL part, masked where it stands as a part of a URL."""
        with self._lock:
            if part in self._parts:
                return
            self._parts = self._parts | {part}
            ordered = sorted(self._parts, key=len, reverse=True)
            alternatives = "|".join(map(re.escape, ordered))
            self._in_url = re.compile(  # after `/`, `@`, `=`; after `:` only as `:pass@`
                f"(?<=[/@=])(?:{alternatives}){_URL_AFTER}|(?<=:)(?:{alternatives})(?=@)")
            long_enough = "|".join(re.escape(p) for p in ordered if len(p) >= SHORT_ANYWHERE)
            self._standalone = re.compile(
                f"(?<!{_TOKEN_CHAR})(?:{long_enough})(?!{_TOKEN_CHAR})") if long_enough else None

    def scrub(self, text: str, standalone: bool = False) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        in_url, alone = self._in_url, self._standalone
        if in_url is not None:
            text = in_url.sub(MASK, text)
        if standalone and alone is not None:
            text = alone.sub(MASK, text)
        return _QUERY_SECRET.sub(r"\1" + MASK, text)


SECRETS = _Registry()


def register_secret(secret: str | None) -> None:
    """Remember a secret so that the log formatter never prints it."""
    SECRETS.add(secret)


def scrub(text: str, standalone: bool = False) -> str:
    """Text with every registered secret and every `api_key=` style value masked; with
    `standalone`, also each notifier URL part that stands alone as a word (a recorded frame
    echoing a webhook token), which in a log line would mask too many ordinary words."""
    return SECRETS.scrub(text, standalone)


_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e"
                     "\u2066-\u2069]")
_UNSAFE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028"
                                 "\u2029\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_one(match: re.Match[str]) -> str:
    char = match.group()
    code = ord(char)
    return _NAMED.get(char) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def escape_controls(text: str, keep_newlines: bool = False) -> str:
    """C0 and C1 controls, line and paragraph separators and bidi overrides shown as escapes
    (`\\n`, `\\x1b`, `\\u202e`), lone surrogates too: text from outside then cannot start a
    forged log line, recolour a terminal or reorder what is shown. A traceback keeps its
    own newlines (`keep_newlines`)."""
    text = (_UNSAFE_BUT_NEWLINE if keep_newlines else _UNSAFE).sub(_escape_one, text)
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


_MENTION = re.compile(r"@(?=(?:everyone|here|channel)\b)|<(?=[!@#])", re.IGNORECASE)
ZERO_WIDTH_SPACE = "\u200b"


def neutralise(text: str) -> str:
    """A value from outside made harmless in a chat message: escaped as for a log, and its
    mentions broken by a zero-width space (`@everyone`, `@here`, `@channel`, and Slack's and
    Discord's `<!channel>`, `<@U123>`, `<#C1>`), so an exchange's text pings nobody."""
    return _MENTION.sub(lambda m: m.group() + ZERO_WIDTH_SPACE, escape_controls(text))


def safe_text(value: object, limit: int = 300) -> str:
    """Text from outside (an exchange's error, a frame's field) made safe to log or alert:
    controls, line breaks, bidi overrides and lone surrogates escaped, secrets masked, length
    bounded."""
    text = value if isinstance(value, str) else repr(value)
    text = escape_controls(text[: limit * 2])
    return scrub(text if len(text) <= limit else text[: limit - 1] + "…")


def log_text(text: str, keep_newlines: bool = False) -> str:
    """A log message (or, with `keep_newlines`, a traceback) safe to write: secrets masked,
    controls escaped, so one record is one line whoever wrote its text."""
    return escape_controls(scrub(text), keep_newlines)


_TRACEBACKS = logging.Formatter()


def _clean(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # a broken format: logging would print msg and args raw; say them masked
        message = f"{record.msg!r} % {record.args!r} (the log call's format does not fit)"
    record.msg, record.args = log_text(message), ()
    if record.exc_info and not record.exc_text:
        record.exc_text = log_text(_TRACEBACKS.formatException(record.exc_info), True)
    if record.stack_info:
        record.stack_info = log_text(record.stack_info, True)


def install_log_redaction() -> None:
    """Clean every log record as it is made, whichever logger makes it (urllib3, apprise,
    requests, ours) and whichever handlers later take it. A record factory, not a filter on
    the root logger's handlers: a handler added afterwards (a test's, a user's, one on a
    library's own logger) would miss such a filter, but no record is made without the factory.
    Records are made only once a logger's level lets them through, so what is cut costs
    nothing. Idempotent; a factory installed later that wraps this one keeps it."""
    base = logging.getLogRecordFactory()
    if getattr(base, "alertd_redacts", False):
        return

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = base(*args, **kwargs)
        _clean(record)
        return record

    factory.alertd_redacts = True  # type: ignore[attr-defined]
    logging.setLogRecordFactory(factory)


install_log_redaction()  # on import: every process and test that loads alertd is covered


class RedactingFormatter(logging.Formatter):
    """Formats as usual, then scrubs secrets from the whole line, tracebacks included; a lone
    surrogate from outside is escaped so that writing the line can never fail."""

    def format(self, record: logging.LogRecord) -> str:
        line = scrub(super().format(record))
        return line.encode("utf-8", "backslashreplace").decode("utf-8")
