"""The shipped unit passes systemd's own checks where systemd-analyze exists."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNIT = Path(__file__).resolve().parents[2] / "systemd" / "alertd.service"
analyze = shutil.which("systemd-analyze")
pytestmark = pytest.mark.skipif(analyze is None, reason="systemd-analyze is not installed")


@pytest.fixture
def unit(tmp_path) -> Path:
    """The unit with ExecStart pointing at this environment's alertd, which verify requires."""
    installed = Path(sys.executable).parent / "alertd"
    copy = tmp_path / "alertd.service"
    copy.write_text(UNIT.read_text().replace("/opt/alertd/bin/alertd", str(installed)))
    return copy


def test_unit_verifies(unit):
    proc = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "alertd.service" not in proc.stderr, proc.stderr


def test_unit_is_hardened(unit):
    proc = subprocess.run([analyze, "security", "--offline=yes", "--threshold=20", str(unit)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "Overall exposure level" in proc.stdout


def test_unit_keeps_secrets_out_of_the_config():
    text = UNIT.read_text()
    for line in ("DynamicUser=yes", "StateDirectory=alertd", "ProtectSystem=strict",
                 "LoadCredential=DELTADEFI_API_KEY:", "Type=notify", "WatchdogSec=", "ExecReload="):
        assert line in text
