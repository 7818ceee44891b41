"""`${NAME}` in a file's strings: from the environment or a systemd credential file."""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from alertd.common.errors import Problem
from alertd.common.redact import register_secret

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Expander:
    """Expands ${NAME} in one file's strings, recording problems instead of stopping."""

    def __init__(self, path: Path, env: Mapping[str, str], problems: list[Problem],
                 secrets: bool = True) -> None:
        self.path, self.env, self.problems, self.secrets = path, env, problems, secrets

    def __call__(self, value: Any, line: int) -> Any:
        if not isinstance(value, str) or "${" not in value:
            return value

        def sub(match: re.Match[str]) -> str:
            name = match.group(1)
            secret = self.env.get(name)
            if secret is None:
                creds = self.env.get("CREDENTIALS_DIRECTORY")
                cred = Path(creds) / name if creds else None
                if cred is not None and cred.is_file():
                    secret = cred.read_text(encoding="utf-8").strip()
            if secret is None and not self.secrets:
                return "unset"
            if secret is None:
                self.problems.append(Problem(
                    self.path, line, f"${{{name}}} is not set; export {name}=... or provide it "
                    "as a systemd credential (LoadCredential)"))
                return ""
            register_secret(secret)
            return secret

        return _VAR.sub(sub, value)
