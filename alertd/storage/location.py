"""Where the state lives: an SQLite file path, or a PostgreSQL URL that may hold a password.

`state:` stays a path unless it starts with `postgresql://` or `postgres://`; the URL is held
as a StateURL, whose printed forms drop the password and query, so naming it in a log line,
an error or `alertd status` never shows a secret.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

from alertd.common.redact import SecretURL, register_secret

SCHEMES = ("postgresql://", "postgres://")
INSTALL = 'a PostgreSQL state needs psycopg: pip install "alertd[postgres]"'
"""What a PostgreSQL state without psycopg says, wherever that is found out."""


class StateURL(SecretURL):
    """A PostgreSQL state location; str() and repr() show only the redacted URL."""

    __slots__ = ()

    def __init__(self, url: str) -> None:
        super().__init__(url)
        if self.password:
            register_secret(self.password)  # written out in full, it is still masked in the logs

    @property
    def password(self) -> str | None:
        try:
            return urlsplit(self._url).password
        except ValueError:
            return None


Location = Path | StateURL


def state_location(text: str | Path) -> Location:
    """A `state:` value or `--state` argument: a StateURL for a PostgreSQL URL, else a path."""
    if isinstance(text, str) and text.lower().startswith(SCHEMES):
        return StateURL(text)
    return Path(text)


def is_postgres(where: object) -> bool:
    return isinstance(where, StateURL)
