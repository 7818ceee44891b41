"""Text from outside alertd (an exchange's fields, a service's replies, a library's log lines)
can neither leak a secret, forge a log line, nor ping a whole channel (issue 16.22, 16.23)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager

from alertd.authoring.record import Recording
from alertd.config.load import load_config
from alertd.domain.observations import Source
from alertd.sim.frames import dd_order
from tests.conftest import API_KEY, agent_config, running
from tests.conftest import DD_KEY as DD
from tests.sinks import HttpSink, wait_for

RULES = """
rules:
  - name: fill
    on: fill
    notify: [hook]
    group_wait: 0
    title: "@here {symbol} filled"
    message: "{qty} of {symbol}"
"""

SHORT = "x7.k2q"
"""A webhook token six characters long, with dots: too short and too dotted to have been
taken for a secret before."""
LONG = "hook-token.with.dots"
PASSWORD = "pässwort99"
"""Written escaped (p\\u00e4ss...) in a JSON line, so scrubbing the encoded line missed it."""


class Everything(logging.Handler):
    """A handler of the user's own on the root logger, with a plain formatter: what it writes
    passes through no formatter of alertd's."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
        self.lines: list[str] = []
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.lines.append(self.format(record))


@contextmanager
def captured() -> Iterator[Everything]:
    """Every logger at DEBUG, apprise's and urllib3's included, into `Everything`."""
    handler, root = Everything(), logging.getLogger()
    level = root.level
    loud = {name: logging.getLogger(name).level for name in ("apprise", "urllib3", "requests")}
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield handler
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
        for name, old in loud.items():
            logging.getLogger(name).setLevel(old)


def test_a_short_dotted_notifier_token_is_in_no_log_record_at_debug(tmp_path, sim, rules_dir):
    with HttpSink() as sink, captured() as logs:
        base = sink.url.rstrip("/")
        cfg = agent_config(tmp_path, sim, {"hook": f"{base}/{LONG}/{SHORT}"})
        with running(cfg, rules_dir):
            for name in ("apprise", "urllib3", "requests"):  # loud at every level
                logging.getLogger(name).setLevel(logging.DEBUG)
            assert sim.wait_ready(DD, timeout=10)
            sim.push_deltadefi(API_KEY, dd_order("o1", "partially_filled", [("r1", "5")], "5"))
            assert wait_for(lambda: sink.posts, 10)
            assert wait_for(lambda: any("POST" in r.getMessage() for r in logs.records
                                        if r.name.startswith("urllib3")), 5)
    assert any(r.name.startswith("urllib3") for r in logs.records)
    for record in logs.records:
        assert SHORT not in record.getMessage() and LONG not in record.getMessage()
    text = "\n".join(logs.lines)
    assert SHORT not in text and LONG not in text and API_KEY not in text


def test_a_recording_keeps_no_echoed_api_key_password_or_token(tmp_path, sim):
    cfg = agent_config(tmp_path, sim, {"hook": f"json://127.0.0.1:9/{SHORT}",
                                       "mail": f"mailtos://trader:{PASSWORD}@example.com"})
    load_config(cfg, env={"TEST_DD_KEY": API_KEY})  # registers the key and the notifiers' parts
    out = tmp_path / "rec.jsonl"
    rec = Recording(out)
    src = Source("main", "deltadefi", "spot")
    rec.frame(src, {"type": "Account", "sub_type": "error", "echo": API_KEY,
                    "detail": {"hook": SHORT, "login": PASSWORD,
                               "said": [f"invalid token {SHORT}", f"bad password {PASSWORD}"]}})
    rec.status(src, "rejected", f"the exchange said: key {API_KEY} refused")
    rec.close()
    text = out.read_text(encoding="utf-8")
    decoded = json.dumps([json.loads(line) for line in text.splitlines()], ensure_ascii=False)
    for secret in (API_KEY, SHORT, PASSWORD):
        assert secret not in text and secret not in decoded
    assert '"type":"Account"' in text and "invalid token ***" in decoded


FORGED = "2026-12-01T00:00:00 INFO alert forged"


def test_a_newline_in_a_symbol_forges_no_log_line(tmp_path, sim, rules_dir):
    frame = dd_order("o2", "partially_filled", [("r2", "7")], "7")
    frame["order"]["symbol"] = f"ADA\n{FORGED}"
    with HttpSink() as sink, captured() as logs:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url})
        with running(cfg, rules_dir):
            assert sim.wait_ready(DD, timeout=10)
            sim.push_deltadefi(API_KEY, frame)
            assert wait_for(lambda: sink.posts, 10)
            assert wait_for(lambda: any("alert fill" in line for line in logs.lines), 5)
    for line in logs.lines:
        assert not any(part.startswith(FORGED) for part in line.splitlines()), line
        assert f"\n{FORGED}" not in line
    for record in logs.records:
        assert "\n" not in record.getMessage()
    assert any(f"ADA\\n{FORGED}" in line for line in logs.lines)  # shown, escaped
    assert [p["title"] for p in sink.posts] == [f"@here ADA\\n{FORGED} filled"]


def test_mentions_escapes_and_bidi_from_a_field_reach_the_chat_broken(tmp_path, sim, rules_dir):
    frame = dd_order("o3", "partially_filled", [("r3", "9")], "9")
    frame["order"]["symbol"] = "@everyone <!channel> <@U123> \x1b[31m\u202eADA"
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url})
        with running(cfg, rules_dir):
            assert sim.wait_ready(DD, timeout=10)
            sim.push_deltadefi(API_KEY, frame)
            assert wait_for(lambda: sink.posts, 10)
    post = sink.posts[0]
    for text in (post["title"], post["message"]):
        assert "@everyone" not in text and "<!channel>" not in text and "<@U123>" not in text
        assert "\x1b" not in text and "\u202e" not in text
        assert "\\x1b[31m\\u202eADA" in text  # shown, escaped, not dropped
    assert post["title"].startswith("@here ")  # the rule author's own text is left alone
