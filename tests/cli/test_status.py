"""`alertd status` on a state file that is not one: a sentence, exit 1, never a traceback."""

from __future__ import annotations

import sqlite3

import pytest

from alertd.cli.main import main


@pytest.mark.parametrize("make", ["empty", "text", "foreign"])
def test_status_on_a_file_that_is_no_state_file_says_so(tmp_path, capsys, make):
    path = tmp_path / "state.db"
    if make == "empty":
        path.write_bytes(b"")
    elif make == "text":
        path.write_text("accounts: []\n" * 200)
    else:
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE photos (id INTEGER)")
    assert main(["status", "--state", str(path)]) == 1
    out = capsys.readouterr()
    assert f"{path}: not an alertd state file" in out.out + out.err
    assert "Traceback" not in out.out + out.err
