"""`alertd check`: every user mistake is `file:line: message`, exit 1, never a traceback."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from alertd.cli.main import main
from alertd.domain.events import fields_of
from alertd.rules.conditions import compile_when
from alertd.rules.load import RULE_KEYS
from tests.conftest import write

CONFIG = """
accounts:
  - name: main
    exchange: deltadefi
    api_key: ${DD_KEY}
  - name: desk
    exchange: sodex
    user: "0xed3e79ef16a7890e6eaef2aa6373b6bec5d59d5c"
notifiers:
  trading: "json://127.0.0.1:9/"
  phone: ["json://127.0.0.1:9/a", "json://127.0.0.1:9/b"]
"""

GOOD_RULE = """
rules:
  - name: ok
    on: fill
    notify: [trading]
"""


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("DD_KEY", "k-123456")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    cfg = write(tmp_path / "alertd.yaml", CONFIG)
    rules = tmp_path / "rules"
    write(rules / "good.yaml", GOOD_RULE)
    return cfg, rules


def check(cfg: Path, rules: Path, capsys) -> tuple[int, str, str]:
    rc = main(["check", "--rules", str(rules), "--config", str(cfg)])
    out = capsys.readouterr()
    return rc, out.out, out.err


def test_valid_config_and_rules_print_a_summary(env, capsys):
    cfg, rules = env
    rc, out, err = check(cfg, rules, capsys)
    assert rc == 0, err
    assert out.startswith("ok: 1 rules (1 fill); 2 accounts: main (deltadefi), desk (sodex "
                          "spot+perps); 2 notifiers: trading, phone (unused: phone)")


RULE_ERRORS = [
    ("unknown field", "    when:\n      colour: red\n", 5, "unknown field 'colour'"),
    ("unknown operator", "    when:\n      qty: {around: 5}\n", 5, "unknown operator 'around'"),
    ("bad regex", "    when:\n      symbol: {matches: \"([\"}\n", 5, "bad regular expression"),
    ("not a number", "    when:\n      qty: {gte: lots}\n", 5, "'qty' is a number"),
    ("order on text", "    when:\n      symbol: {gt: 5}\n", 5, "'gt' compares numbers"),
    ("unknown template field", "    title: \"{colour}\"\n", 4, "unknown field '{colour}'"),
    ("attribute access", "    title: \"{symbol.__class__}\"\n", 4, "without attribute or index"),
    ("index access", "    message: \"{symbol[0]}\"\n", 4, "without attribute or index"),
    ("conversion", "    message: \"{symbol!r}\"\n", 4, "'!r' is not allowed"),
    ("unknown notifier", "    notify: [pager]\n", 4, "unknown notifier 'pager'"),
    ("unknown account", "    accounts: [other]\n", 4, "unknown account other"),
    ("bad severity", "    severity: panic\n", 4, "severity must be one of"),
    ("rearm on fill", "    when: {qty: {gt: 1}}\n    rearm: {qty: {lt: 1}}\n", 5,
     "'rearm' applies to level events"),
    ("typo key", "    notfy: [trading]\n", 4, "unknown rule key 'notfy'; did you mean 'notify'?"),
    ("backreference", "    when:\n      symbol: {matches: '(a)\\1'}\n", 5,
     "backreferences and lookaround are not available"),
    ("resolved on fill", "    resolved: true\n", 4, "a 'fill' event never recovers"),
    ("huge width", "    title: \"{price:>999999999}\"\n", 4, "asks for more than 200 characters"),
    ("huge precision", "    message: \"{price:.99999999f}\"\n", 4, "width and precision up to"),
    ("thousands separator", "    when:\n      quote_qty: {gte: \"1,000\"}\n", 5,
     "'quote_qty' is a number; '1,000' is not: write 1000, without thousands separators"),
    ("number with a unit", "    when:\n      quote_qty: {gte: 500 USDM}\n", 5,
     "write the number alone, 500, without a unit or currency"),
    ("misspelt field", "    when:\n      symbl: ADAUSDM\n", 5,
     "unknown field 'symbl' for this event; did you mean 'symbol'?"),
    ("misspelt operator", "    when:\n      qty: {gtee: 5}\n", 5,
     "unknown operator 'gtee' on 'qty'; did you mean 'gte'?"),
    ("misspelt notifier", "    notify: [tradng]\n", 4,
     "unknown notifier 'tradng'; did you mean 'trading'?"),
    ("bad group_wait", "    group_wait: soon\n", 4, "group_wait is a duration up to 1h"),
    ("long group_wait", "    group_wait: 2h\n", 4, "group_wait is a duration up to 1h"),
    ("unknown group_by field", "    group_by: [colour]\n", 4, "group_by: unknown field colour"),
    ("bad quiet time", "    quiet: {from: \"25:00\", to: \"07:00\"}\n", 4,
     "'from' is a time of day as HH:MM"),
    ("unknown time zone", "    quiet: {from: \"23:00\", to: \"07:00\", tz: Mars/Olympus}\n", 4,
     "unknown time zone 'Mars/Olympus'"),
    ("quiet not a mapping", "    quiet: nights\n", 4, "quiet is a mapping like"),
]


@pytest.mark.parametrize(("what", "extra", "line", "message"), RULE_ERRORS,
                         ids=[e[0] for e in RULE_ERRORS])
def test_rule_errors_name_file_and_line(env, capsys, what, extra, line, message):
    cfg, rules = env
    bad = write(rules / "sub" / "bad.yaml",
                "rules:\n  - name: broken\n    on: fill\n" + extra
                + ("    notify: [trading]\n" if "notify" not in extra and "notfy" not in extra
                   else ""))
    rc, out, err = check(cfg, rules, capsys)
    assert rc == 1
    assert f"{bad}:{line}: " in err, err
    assert message in err
    assert "Traceback" not in err and out == ""


REPORT_ERRORS = [
    ("bad schedule", '    every: daily\n', 4, "every: 'daily' is not a schedule"),
    ("no time", '    every: day\n', 4, 'day at "HH:MM" needs the time of day'),
    ("bad zone", '    every: day at "08:00"\n    tz: Moon/Base\n', 5, "unknown time zone"),
    ("bad section", '    every: day at "08:00"\n    include: [fills, gossip]\n', 5,
     "include lists sections from: fills, balances, points, health"),
    ("unknown notifier", '    every: day at "08:00"\n    notify: [pager]\n', 4,
     "unknown notifier 'pager'"),
]


@pytest.mark.parametrize(("what", "extra", "line", "message"), REPORT_ERRORS,
                         ids=[e[0] for e in REPORT_ERRORS])
def test_report_errors_name_file_and_line(env, capsys, what, extra, line, message):
    cfg, rules = env
    bad = write(rules / "reports.yaml", "reports:\n  - name: daily\n    notify: [trading]\n"
                .replace("    notify: [trading]\n", "" if "notify" in extra else
                         "    notify: [trading]\n") + extra)
    rc, out, err = check(cfg, rules, capsys)
    assert rc == 1
    assert f"{bad}:{line}: " in err and message in err, err
    assert "Traceback" not in err and out == ""


NOTIFIER_ERRORS = [
    ("rate syntax", "    rate: 20 per minute\n", "rate is a count per time, such as 20/min"),
    ("zero rate", "    rate: 0/min\n", "rate is a count per time"),
    ("quiet zone", "    quiet: {from: \"22:00\", to: \"06:00\", tz: Nowhere/City}\n",
     "quiet: unknown time zone 'Nowhere/City'"),
    ("unknown key", "    rates: 20/min\n", "unknown key 'rates'; expected one of: urls, rate"),
]


@pytest.mark.parametrize(("what", "extra", "message"), NOTIFIER_ERRORS,
                         ids=[e[0] for e in NOTIFIER_ERRORS])
def test_notifier_rate_and_quiet_errors_name_file_and_line(env, capsys, what, extra, message):
    cfg, rules = env
    write(cfg, CONFIG + "  pager:\n    urls: [\"json://127.0.0.1:9/p\"]\n" + extra)
    rc, out, err = check(cfg, rules, capsys)
    assert rc == 1
    assert f"{cfg}:{CONFIG.count(chr(10)) + 2}: notifier 'pager': {message}" in err, err
    assert "Traceback" not in err and out == ""


def test_notifier_mapping_with_rate_and_quiet_loads(env, capsys):
    cfg, rules = env
    write(cfg, CONFIG + "  pager:\n    urls: \"json://127.0.0.1:9/p\"\n    rate: 5/min\n"
          "    quiet: {from: \"23:00\", to: \"07:00\", tz: Europe/Berlin}\n")
    rc, out, err = check(cfg, rules, capsys)
    assert rc == 0, err
    assert "3 notifiers: trading, phone, pager" in out


def test_duplicate_rule_names_across_files_point_at_both(env, capsys):
    cfg, rules = env
    dup = write(rules / "zdup.yml", GOOD_RULE)
    rc, _, err = check(cfg, rules, capsys)
    assert rc == 1
    assert f"{dup}:2: duplicate rule name 'ok' (first defined at {rules / 'good.yaml'}:2)" in err


def test_yaml_syntax_error_and_unknown_event_kind(env, capsys):
    cfg, rules = env
    broken = write(rules / "broken.yaml", "rules:\n  - name: x\n    on: [fill\n")
    kind = write(rules / "kind.yaml", "rules:\n  - name: y\n    on: trade\n    notify: [trading]\n")
    rc, _, err = check(cfg, rules, capsys)
    assert rc == 1
    assert f"{broken}:4: YAML syntax error" in err or f"{broken}:3: YAML syntax error" in err
    assert f"{kind}:3: rule 'y': 'on' must be one of: fill, order" in err
    assert err.rstrip().endswith("2 problems found; nothing was started")


CONFIG_ERRORS = [
    ("missing env var", ("${DD_KEY}", "${NOPE_KEY}"), 4, "${NOPE_KEY} is not set"),
    ("unknown exchange", ("exchange: sodex", "exchange: binance"), 6, "exchange must be one of"),
    ("bad address", ('"0xed3e79ef16a7890e6eaef2aa6373b6bec5d59d5c"', '"0x12"'), 7,
     "owner address"),
    ("unknown top key", ("notifiers:", "notifers: {}\nnotifiers:"), 8, "unknown key 'notifers'"),
    ("duplicate account", ("name: desk", "name: main"), 5, "duplicate account name 'main'"),
    ("bad notifier", ('trading: "json://127.0.0.1:9/"', "trading: 42"), 9,
     "notifier 'trading' must be an Apprise URL"),
    ("unloadable url", ('trading: "json://127.0.0.1:9/"', 'trading: "nosuch://x/y"'), 9,
     "loads no Apprise service"),
    ("key in url", ("    api_key: ${DD_KEY}", "    api_key: ${DD_KEY}\n    url: wss://x/s?api_key=1"),
     5, "put the key in 'api_key'"),
    ("bad markets", ('9d5c"', '9d5c"\n    markets: [futures]'), 8, "markets is a list of"),
]


@pytest.mark.parametrize(("what", "change", "line", "message"), CONFIG_ERRORS,
                         ids=[e[0] for e in CONFIG_ERRORS])
def test_config_errors_name_file_and_line(env, capsys, what, change, line, message):
    cfg, rules = env
    cfg.write_text(cfg.read_text().replace(*change, 1))
    rc, out, err = check(cfg, rules, capsys)
    assert rc == 1
    assert f"{cfg}:{line}: " in err and message in err, err
    assert "Traceback" not in err and out == ""


def test_missing_config_and_rules_folder(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rc = main(["check", "--rules", "rules", "--config", "nope.yaml"])
    assert rc == 1 and "nope.yaml:1: config file not found" in capsys.readouterr().err


def test_credentials_directory_supplies_secrets(env, capsys, monkeypatch, tmp_path):
    cfg, rules = env
    monkeypatch.delenv("DD_KEY")
    creds = tmp_path / "creds"
    write(creds / "DD_KEY", "from-systemd-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    rc, _, err = check(cfg, rules, capsys)
    assert rc == 0, err


def test_check_runs_as_a_command_without_traceback(env, tmp_path):
    cfg, rules = env
    write(rules / "bad.yaml", "rules:\n  - name: z\n    on: fill\n    title: '{x.__class__}'\n"
          "    notify: [trading]\n")
    proc = subprocess.run([sys.executable, "-m", "alertd", "check", "--rules", str(rules),
                           "--config", str(cfg)], capture_output=True, text=True, timeout=60,
                          env={"DD_KEY": "k-1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 1
    assert f"{rules / 'bad.yaml'}:4: rule 'z': title:" in proc.stderr
    assert "Traceback" not in proc.stderr


@pytest.mark.parametrize(("when", "fields", "expected"), [
    ({"symbol": "adausdm"}, {"symbol": "ADAUSDM"}, True),
    ({"qty": {"gte": 0.3}}, {"qty": __import__("decimal").Decimal("0.3")}, True),
    ({"qty": {"gt": "0.1", "lt": 1}}, {"qty": __import__("decimal").Decimal("1")}, False),
    ({"any": [{"side": "sell"}, {"qty": {"gt": 5}}]}, {"side": "buy", "qty": 6}, True),
    ({"not": {"side": "buy"}}, {"side": "BUY", "qty": 1}, False),
    ({"side": {"in": ["Buy", "x"]}}, {"side": "buy"}, True),
    ({"side": {"not_in": ["buy"]}}, {"side": None}, True),
    ({"symbol": {"matches": "^ada"}}, {"symbol": "ADAUSDM"}, True),
    ({"qty": {"lt": 5}}, {"qty": None}, False),
    ({"symbol": {"ne": "x"}}, {"symbol": None}, True),
    ({"symbol": {"matches": "."}}, {"symbol": None}, False),
    ({"symbol": {"in": ["x"]}}, {"symbol": None}, False),
    ({"complete": True}, {"complete": True}, True),
])
def test_condition_semantics(when, fields, expected):
    assert compile_when(when, fields_of("fill")) (fields) is expected


def test_a_catastrophic_pattern_runs_in_linear_time_instead_of_stalling_the_core():
    """With Python's `re` this search takes longer than the age of the universe."""
    when = compile_when({"symbol": {"matches": "(a+)+$"}}, fields_of("fill"))
    assert when({"symbol": "a" * 100_000 + "!"}) is False
    assert when({"symbol": "xa"}) is True


def test_a_rendered_alert_is_bounded_whatever_the_values():
    from alertd.domain.templates import MAX_RENDERED, Template

    t = Template("{symbol:>200} {symbol}", ["symbol"])
    text = t.render({"symbol": "x" * 1_000_000})
    assert len(text) <= MAX_RENDERED + 10 and text.endswith("…[cut]")


def test_run_with_an_unwritable_state_file_says_so_without_traceback(env, capsys, tmp_path):
    cfg, rules = env
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    cfg.write_text(cfg.read_text() + f"state: {blocker}/state.db\n")
    rc = main(["--rules", str(rules), "--config", str(cfg)])
    err = capsys.readouterr().err
    assert rc == 1
    assert f"{cfg}:11: cannot open the state file {blocker}/state.db" in err
    assert "set 'state:' to a writable path" in err and "Traceback" not in err


def test_check_format_json_for_editors_and_ci(env, capsys):
    cfg, rules = env
    assert main(["check", "--rules", str(rules), "--config", str(cfg), "--format", "json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True and report["summary"].startswith("1 rules (1 fill)")
    bad = write(rules / "bad.yaml", "rules:\n  - name: b\n    on: fill\n    notfy: [x]\n")
    assert main(["check", "--rules", str(rules), "--config", str(cfg), "--format", "json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert {"file": str(bad), "line": 4, "message": "unknown rule key 'notfy'; did you mean "
            "'notify'?; expected one of: " + ", ".join(RULE_KEYS)} in report["problems"]


def test_yaml_reads_addresses_times_and_leading_zeros_as_written(env, capsys):
    """YAML 1.1 made `0x…` an integer that never matches, `23:00` the number 1380 and `017`
    octal 15; rule and config files are read with YAML 1.2's core types instead."""
    from alertd.common.yamlsrc import load_yaml

    cfg, rules = env
    write(rules / "good.yaml", """
rules:
  - name: ref
    on: points
    when: {source_ref: 0xed3e79ef16a7890e6eaef2aa6373b6bec5d59d5c}
    quiet: {from: 23:00, to: 07:00}
    notify: [trading]
""")
    rc, _, err = check(cfg, rules, capsys)
    assert rc == 0, err
    data = load_yaml(rules / "good.yaml")["rules"][0]
    assert data["when"]["source_ref"] == "0xed3e79ef16a7890e6eaef2aa6373b6bec5d59d5c"
    assert data["quiet"] == {"from": "23:00", "to": "07:00"}
    assert load_yaml(write(rules.parent / "n.yaml", "a: 017\nb: 1.50\n")) == {"a": 17,
                                                                            "b": Decimal("1.50")}


def test_a_thousands_separator_in_a_flow_mapping_says_so(env, capsys):
    cfg, rules = env
    write(rules / "good.yaml", """
rules:
  - name: big
    on: fill
    when: {quote_qty: {gte: 1,000}}
    notify: [trading]
""")
    rc, _, err = check(cfg, rules, capsys)
    assert rc == 1
    assert f"{rules / 'good.yaml'}:4: rule 'big': when: 'quote_qty': in {{gte: 1,...}} the " \
        "comma ends the number" in err
    assert "without thousands separators" in err
