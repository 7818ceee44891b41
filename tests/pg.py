"""A throwaway PostgreSQL cluster for the tests: initdb into a temp dir, on 127.0.0.1 and a
free port, a database per test; stopped at the end of the session. No service is assumed.

initdb refuses to run as root, so as root the cluster runs as the unprivileged `postgres`
user (the Debian package makes it; created here if missing). Without the binaries the
PostgreSQL tests skip, unless ALERTD_REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

from tests.sinks import free_port


def binaries() -> Path | None:
    """initdb's folder: on PATH, else the newest Debian install (not on PATH there)."""
    found = shutil.which("initdb")
    if found:
        return Path(found).resolve().parent
    installed = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                       key=lambda p: int(p.parts[-3]) if p.parts[-3].isdigit() else 0)
    return installed[-1].parent if installed else None


def unavailable(reason: str) -> None:
    if os.environ.get("ALERTD_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"PostgreSQL is required (ALERTD_REQUIRE_POSTGRES=1): {reason}")
    pytest.skip(f"no PostgreSQL here: {reason}")


class Cluster:
    """One initdb'd cluster; `url(db)` for alertd, `admin()` for the test itself."""

    def __init__(self) -> None:
        bindir = binaries()
        if bindir is None:
            unavailable("initdb not found (apt-get install postgresql)")
        try:
            import psycopg  # noqa: F401
        except ImportError:
            unavailable('psycopg not installed (pip install "alertd[test]")')
        self.bin = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="alertd-pg-"))
        self.data, self.port = self.dir / "data", free_port()
        self.user = None
        if os.getuid() == 0:
            self.user = "postgres"
            try:
                pwd.getpwnam(self.user)
            except KeyError:
                subprocess.run(["useradd", "--system", "--no-create-home", self.user],
                               check=True)
            shutil.chown(self.dir, self.user)
        os.chmod(self.dir, 0o755)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--no-sync", "-E", "UTF8", "--locale=C.UTF-8")
        self.start()
        self._ids = itertools.count(1)

    def _run(self, tool: str, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        cmd = [str(self.bin / tool), *args]
        if self.user is not None:
            cmd = ["runuser", "-u", self.user, "--", *cmd]
        return subprocess.run(cmd, check=check, capture_output=True, text=True, timeout=60,
                              cwd=self.dir)

    def _options(self) -> str:
        return (f"-c listen_addresses=127.0.0.1 -p {self.port} "
                f"-c unix_socket_directories={self.dir} -c fsync=off -c max_connections=200")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-o", self._options(), "-l",
                  str(self.dir / "log"), "-w", "start")

    def restart(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-o", self._options(), "-l",
                  str(self.dir / "log"), "-m", "fast", "-w", "restart")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", check=False)
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, db: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{db}"

    def admin(self):  # type: ignore[no-untyped-def]
        import psycopg
        return psycopg.connect(self.url(), autocommit=True)

    def new_database(self) -> str:
        """A fresh, empty database; its URL."""
        name = f"t{os.getpid()}_{next(self._ids)}"
        with self.admin() as conn:
            conn.execute(f"CREATE DATABASE {name}")
        return self.url(name)

    def terminate(self, backend: int) -> bool:
        with self.admin() as conn:
            return bool(conn.execute("SELECT pg_terminate_backend(%s)", (backend,)
                                     ).fetchone()[0])
