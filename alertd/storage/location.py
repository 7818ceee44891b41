"""Where the state lives: an SQLite file path, or a PostgreSQL URL that may hold a password.

`state:` stays a path unless it starts with `postgresql://` or `postgres://`; the URL is held
as a StateURL, whose printed forms drop the password and query, so naming it in a log line,
an error or `alertd status` never shows a secret.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from alertd.common.redact import redact_url, register_secret

SCHEMES = ("postgresql://", "postgres://")


class StateURL:
    """A PostgreSQL state location; str() and repr() show only the redacted URL."""

    __slots__ = ("_url",)

    def __init__(self, url: str) -> None:
        self._url = url
        if self.password:
            register_secret(self.password)  # written out in full, it is still masked in the logs

    def reveal(self) -> str:
        """The full URL, for the PostgreSQL adapter only."""
        return self._url

    @property
    def password(self) -> str | None:
        try:
            return urlsplit(self._url).password
        except ValueError:
            return None

    def __str__(self) -> str:
        return redact_url(self._url)

    def __repr__(self) -> str:
        return f"StateURL({redact_url(self._url)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, StateURL) and other._url == self._url

    def __hash__(self) -> int:
        return hash(self._url)


Location = Path | StateURL


def state_location(text: str | Path) -> Location:
    """A `state:` value or `--state` argument: a StateURL for a PostgreSQL URL, else a path."""
    if isinstance(text, str) and text.lower().startswith(SCHEMES):
        return StateURL(text)
    return Path(text)


def is_postgres(where: object) -> bool:
    return isinstance(where, StateURL)
