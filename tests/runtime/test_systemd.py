"""The shipped units (`alertd.service`, and the template `alertd@.service` for one instance
per config) pass systemd's own checks where systemd-analyze exists."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

UNITS = Path(__file__).resolve().parents[2] / "systemd"
UNIT = UNITS / "alertd.service"
TEMPLATE = UNITS / "alertd@.service"
analyze = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(analyze is None, reason="systemd-analyze is not installed")
INSTANCE_LINES = {
    "Description": "Description=alertd (%i): alerts from DeltaDeFi and SoDEX account streams",
    "ExecStart": "ExecStart=/opt/alertd/bin/alertd --rules /etc/alertd/rules/%i "
                 "--config %d/alertd.yaml",
    "StateDirectory": "StateDirectory=alertd/%i",
    "LoadCredential=alertd.yaml": "LoadCredential=alertd.yaml:/etc/alertd/%i.yaml",
    "LoadCredential=DELTADEFI_API_KEY": "LoadCredential=DELTADEFI_API_KEY:"
                                        "/etc/alertd/credentials/%i/deltadefi_api_key",
}
"""What the template says per instance, in place of alertd.service's line of that name."""


@pytest.fixture(params=["alertd.service", "alertd@.service"])
def unit(request, tmp_path) -> tuple[Path, Path]:
    """A unit with ExecStart pointing at this environment's alertd, which verify requires,
    and what to verify: the unit itself, or an instance of the template."""
    source = UNITS / request.param
    installed = Path(sys.executable).parent / "alertd"
    copy = tmp_path / request.param
    copy.write_text(source.read_text().replace("/opt/alertd/bin/alertd", str(installed)))
    return copy, tmp_path / request.param.replace("@", "@desk-a")


def settings(path: Path) -> list[str]:
    return [line for line in path.read_text().splitlines()
            if line and not line.startswith(("#", "["))]


@needs_analyze
def test_unit_verifies(unit):
    copy, target = unit
    proc = subprocess.run([analyze, "verify", str(target)], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert copy.name not in proc.stderr, proc.stderr  # warnings name the unit file


@needs_analyze
def test_unit_is_hardened(unit):
    copy, _ = unit
    proc = subprocess.run([analyze, "security", "--offline=yes", "--threshold=20", str(copy)],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout[-2000:]
    assert "Overall exposure level" in proc.stdout


@pytest.mark.parametrize("path", [UNIT, TEMPLATE], ids=["alertd.service", "alertd@.service"])
def test_unit_keeps_secrets_out_of_the_config(path):
    text = path.read_text()
    for line in ("DynamicUser=yes", "StateDirectory=alertd", "ProtectSystem=strict",
                 "LoadCredential=DELTADEFI_API_KEY:", "Type=notify", "WatchdogSec=", "ExecReload="):
        assert line in text


def test_the_template_is_alertd_service_per_instance_with_every_hardening_line_kept():
    """Each instance has its own config, rules, key, state directory and dynamic user (a
    template's instances share one unless it is named); every other line is alertd.service's,
    so hardening added there and not here fails this test."""
    template = settings(TEMPLATE)
    for line in settings(UNIT):
        name = line.split(":", 1)[0] if line.startswith("LoadCredential=") else \
            line.split("=", 1)[0]
        assert INSTANCE_LINES.get(name, line) in template, line
    assert "User=alertd-%i" in template
    assert sorted(set(template) - set(settings(UNIT))) == sorted(
        [*INSTANCE_LINES.values(), "User=alertd-%i"])
