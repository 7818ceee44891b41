"""Log lines fit where they go: the journal (a `<N>` priority, no timestamp of ours), a log
shipper (one JSON object a line), a terminal (a timestamp); outside text never starts a line."""

from __future__ import annotations

import json
import logging

from alertd.cli.common import setup_logging


def lines(capsys) -> list[str]:
    return capsys.readouterr().err.splitlines()


def test_under_journald_each_line_has_its_priority_and_no_timestamp(monkeypatch, capsys):
    monkeypatch.setenv("JOURNAL_STREAM", "8:12345")
    setup_logging()
    logging.getLogger("alertd").warning("main/spot: disconnected (%s)", "reset\nINFO forged")
    logging.getLogger("alertd").info("alert low [hook] low 100")
    assert lines(capsys) == ["<4>main/spot: disconnected (reset\\nINFO forged)",
                             "<6>alert low [hook] low 100"]


def test_json_lines_for_log_shippers(monkeypatch, capsys):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    setup_logging(fmt="json")
    logging.getLogger("alertd.stream").error("desk/spot: %s", "a symbol with \x1b[31m")
    [line] = lines(capsys)
    entry = json.loads(line)
    assert entry["level"] == "error" and entry["logger"] == "alertd.stream"
    assert entry["message"] == "desk/spot: a symbol with \\x1b[31m"
    assert entry["time"].endswith("+00:00")


def test_a_terminal_gets_a_timestamp(monkeypatch, capsys):
    monkeypatch.delenv("JOURNAL_STREAM", raising=False)
    setup_logging()
    logging.getLogger("alertd").info("started")
    [line] = lines(capsys)
    assert line.endswith(" INFO started") and line[:4].isdigit()


def test_version_and_a_bare_alertd_that_shows_the_daemon_s_options(capsys):
    from alertd import __version__
    from alertd.cli.main import main

    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"alertd {__version__}\n"
    assert main([]) == 0
    out = capsys.readouterr().out
    assert "check" in out and "alertd [run] options:" in out and "--rules DIR" in out


def test_help_into_a_reader_that_left_is_no_traceback():
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "alertd", "--help"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # `alertd --help | head -1`, with head gone before alertd writes
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and b"Traceback" not in err
