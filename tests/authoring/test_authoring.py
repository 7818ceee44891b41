"""Rule authors' tools: `alertd test` and friends, run as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from alertd.cli.main import main
from tests.conftest import write

ROOT = Path(__file__).resolve().parents[2]


class LOADER(yaml.SafeLoader):
    """YAML 1.2 as editors read it: `on:` is a key, not `true`."""


LOADER.yaml_implicit_resolvers = {
    k: [r for r in v if r[0] != "tag:yaml.org,2002:bool"]
    for k, v in yaml.SafeLoader.yaml_implicit_resolvers.items()}

RULES = """
rules:
  - name: low
    on: balance
    when: {asset: ada, free: {lt: 500}}
    notify: [phone]
    title: "Low {asset}"
    message: "free {free}"
"""


def test_the_shipped_rule_tests_pass(capsys):
    assert main(["test", str(ROOT / "rules")]) == 0
    out = capsys.readouterr().out
    assert "FAILED" not in out and " 0 failed" in out
    for name in ("fills", "balances", "leagues", "streams", "reports"):
        assert f"{name}.test.yaml" in out  # one test file per example rule file


def test_a_failing_case_shows_expected_and_got_and_exits_1(tmp_path, capsys):
    write(tmp_path / "r.yaml", RULES)
    test = write(tmp_path / "r.test.yaml", """
        tests:
          - name: low fires once
            input:
              - event: {kind: balance, asset: ada, free: 450, total: 450}
              - at: 5s
                event: {kind: balance, asset: ada, free: 400, total: 400}
            expect:
              - rule: low
                title: Low ADA
                message: {matches: "^free 4[0-9]0$"}
          - name: nothing for USDM
            input:
              - event: {kind: balance, asset: usdm, free: 1, total: 1}
            expect:
              - rule: low
        """)
    assert main(["test", str(test)]) == 1
    out = capsys.readouterr().out
    assert "  FAILED  low fires once" in out
    assert ("~ alert #1 (line 8) title:\n            expected 'Low ADA'\n"
            "            got      'Low ada'") in out
    assert "  FAILED  nothing for USDM" in out and "- missing alert #1 (line 15): rule 'low'" in out
    assert out.rstrip().endswith("0 passed, 2 failed")


def test_a_broken_test_file_is_reported_by_file_and_line(tmp_path, capsys):
    write(tmp_path / "r.yaml", RULES)
    test = write(tmp_path / "r.test.yaml", """
        rule_files: [r.yaml, gone.yaml]
        tests:
          - name: typo
            input:
              - event: {kind: balance, asset: ada, fre: 450}
              - at: soon
                event: {kind: balance}
            expect:
              - rule: low
                titel: x
        """)
    assert main(["test", str(test)]) == 1
    out = capsys.readouterr().out
    assert f"{test}:1: rule file {tmp_path / 'gone.yaml'} not found" in out
    assert f"{test}:5: 'balance' events have no field 'fre'" in out
    assert f"{test}:6: at is a time since the start of the test" in out
    assert f"{test}:10: unknown key 'titel'" in out
    assert "Traceback" not in out


def test_explain_names_the_rules_that_fire_and_the_first_failing_condition(tmp_path, capsys):
    rules = tmp_path / "rules"
    write(rules / "r.yaml", RULES + """
  - name: low-desk
    on: balance
    accounts: [desk]
    when: {asset: ada, free: {lt: 500}}
    notify: [phone]
  - name: very-low
    on: balance
    when: {any: [{asset: usdm}, {free: {lt: 100}}]}
    notify: [phone]
  - name: fills
    on: fill
    notify: [phone]
""")
    event = write(tmp_path / "e.json", '{"kind": "balance", "asset": "ADA", "free": 450.5}')
    assert main(["explain", "--rules", str(rules), str(event)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0] == "event: balance on main: asset ADA, free 450.5"
    assert out[1] == f"  FIRES  low ({rules / 'r.yaml'}:2) -> phone"
    assert out[2] == "         Low ADA / free 450.5"
    assert out[4].startswith("  no     low-desk (") and out[4].endswith(
        "): accounts desk: the event is on main")
    assert "very-low" in out[5] and ("none of 'any' holds: asset eq usdm: the event has 'ADA'; "
                                     "free lt 100: the event has '450.5'") in out[5]
    assert out[6] == "  (1 rules on other kinds of event)"


def test_explain_reports_a_bad_event_file_by_line(tmp_path, capsys):
    rules = write(tmp_path / "rules" / "r.yaml", RULES).parent
    event = write(tmp_path / "e.yaml", "kind: balance\nasset: ada\nfrees: 450\n")
    assert main(["explain", "--rules", str(rules), str(event)]) == 1
    assert f"{event}:3: 'balance' events have no field 'frees'" in capsys.readouterr().err


@pytest.mark.parametrize("value", ['"1,860"', "abc", "[1, 2]"])
def test_explain_says_what_is_wrong_with_a_number_that_is_none(tmp_path, capsys, value):
    rules = write(tmp_path / "rules" / "r.yaml", RULES).parent
    event = write(tmp_path / "e.yaml", f"kind: balance\nasset: ada\nfree: {value}\n")
    assert main(["explain", "--rules", str(rules), str(event)]) == 1
    err = capsys.readouterr().err
    assert f"{event}:3: 'balance' event: 'free' is a number" in err
    assert "Traceback" not in err


def test_notify_test_reports_each_url_in_plain_words_and_exits_1_on_failure(tmp_path, capsys):
    from tests.sinks import HttpSink, free_port

    with HttpSink() as sink:
        cfg = write(tmp_path / "alertd.yaml", f"""
            accounts:
              - {{name: main, exchange: deltadefi, api_key: k-1234567}}
            notifiers:
              trading: ["json://{sink.url.split('://')[1]}", "json://127.0.0.1:{free_port()}/x"]
              ok: "json://{sink.url.split('://')[1]}"
            """)
        assert main(["notify-test", "ok", "--config", str(cfg)]) == 0
        assert capsys.readouterr().out.startswith("ok: json://127.0.0.1:")
        assert sink.titles() == ["alertd test message"]
        assert main(["notify-test", "trading", "--config", str(cfg)]) == 1
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].endswith(": ok")
        assert "FAILED: connection refused: nothing listens at that host and port" in lines[1]
        assert main(["notify-test", "tradng", "--config", str(cfg)]) == 1
        assert "no notifier 'tradng'; did you mean 'trading'?" in capsys.readouterr().err
        token = "123456789:abcdefg_hijklmnop"
        assert main(["notify-test", f"tgram://{token}/12315544"]) == 1
        out = capsys.readouterr()
        assert "FAILED" in out.out and token not in out.out + out.err


def test_check_with_notifiers_sends_a_test_message_through_each(tmp_path, capsys):
    from tests.sinks import HttpSink

    with HttpSink() as sink:
        cfg = write(tmp_path / "alertd.yaml", f"""
            accounts:
              - {{name: main, exchange: deltadefi, api_key: k-1234567}}
            notifiers:
              phone: "{sink.url}"
            """)
        rules = write(tmp_path / "rules" / "r.yaml", RULES).parent
        assert main(["check", "--rules", str(rules), "--config", str(cfg), "--notifiers"]) == 0
        assert capsys.readouterr().out.splitlines()[-1].endswith(": ok")
        assert len(sink.posts) == 1


EXPRESSIBLE = {"unknown field", "unknown operator", "not a number", "order on text",
               "bad severity", "rearm on fill", "typo key", "resolved on fill", "bad group_wait",
               "unknown group_by field", "bad quiet time", "quiet not a mapping"}
"""Load errors a JSON Schema can express; the others need the config (notifier and account
names), RE2 or the template parser, and stay the loader's."""


def test_the_editor_schemas_are_shipped_current_and_accept_every_example(capsys):
    import jsonschema

    from alertd.authoring.schemas import text
    from alertd.common.yamlsrc import load_yaml
    from alertd.rules.load import rule_files

    for which in ("rules", "config"):
        assert main(["schema", which]) == 0
        printed = capsys.readouterr().out
        assert printed == text(which) == (ROOT / "rules" / "schema" /
                                          f"{which}.schema.json").read_text()
        jsonschema.Draft202012Validator.check_schema(json.loads(printed))
    validator = jsonschema.Draft202012Validator(json.loads(text("rules")))
    for path in rule_files(ROOT / "rules"):
        assert path.read_text().startswith(
            "# yaml-language-server: $schema=schema/rules.schema.json\n"), path
        assert list(validator.iter_errors(load_yaml(path))) == [], path


def test_every_load_error_a_schema_can_express_is_flagged_by_it_too():
    import jsonschema

    from alertd.authoring.schemas import text
    from tests.rules.test_check import RULE_ERRORS

    validator = jsonschema.Draft202012Validator(json.loads(text("rules")))
    good = yaml.load("rules:\n  - name: ok\n    on: fill\n    notify: [trading]\n", Loader=LOADER)
    assert list(validator.iter_errors(good)) == []
    assert {what for what, *_ in RULE_ERRORS} >= EXPRESSIBLE
    for what, extra, _, _ in RULE_ERRORS:
        if what not in EXPRESSIBLE:
            continue
        bad = yaml.load("rules:\n  - name: broken\n    on: fill\n" + extra
                        + ("    notify: [trading]\n" if "notify" not in extra else ""),
                        Loader=LOADER)
        assert list(validator.iter_errors(bad)), what


def test_the_config_schema_accepts_the_readme_config_and_flags_a_bad_rate():
    import jsonschema

    from alertd.authoring.schemas import text

    readme = (ROOT / "README.md").read_text()
    block = readme.split("### Config", 1)[1].split("```yaml\n", 1)[1].split("```", 1)[0]
    config = yaml.load(block, Loader=LOADER)
    validator = jsonschema.Draft202012Validator(json.loads(text("config")))
    assert list(validator.iter_errors(config)) == []
    config["notifiers"]["phone"]["rate"] = "20 per minute"
    assert list(validator.iter_errors(config))


def test_a_recording_made_by_the_demo_replays_to_the_same_alerts(tmp_path, capsys):
    import subprocess
    import sys

    recording = tmp_path / "demo.jsonl"
    demo = subprocess.run([sys.executable, "-m", "alertd", "demo", "--record", str(recording)],
                          capture_output=True, text=True, timeout=120)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    lines = demo.stdout.splitlines()
    shown = sorted((line.split("ALERT -> ", 1)[1].split(": ", 1)[0],
                    line.split("ALERT -> ", 1)[1].split(": ", 1)[1], lines[i + 1].strip())
                   for i, line in enumerate(lines) if "ALERT -> " in line)
    assert main(["replay", str(recording), "--rules", str(ROOT / "rules")]) == 0
    out = capsys.readouterr().out.splitlines()
    replayed = sorted((name, line.split("] ", 1)[1], out[i + 1].strip())
                      for i, line in enumerate(out) if line.startswith("[")
                      for name in line[1:].split("]", 1)[0].split(","))
    assert replayed == shown and len(shown) > 10
    assert out[-1].startswith("replayed ") and "nothing sent" in out[-1]


def test_a_recording_holds_no_key_no_address_and_rotates_by_size(tmp_path):
    from decimal import Decimal

    from alertd.authoring.record import Recording
    from alertd.common.redact import register_secret
    from alertd.domain.observations import Source

    register_secret("sk-live-SECRET-12345")
    rec = Recording(tmp_path / "r.jsonl", max_bytes=400)
    src = Source("desk", "sodex", "spot")
    for n in range(6):
        rec.frame(src, {"channel": "x", "note": "key sk-live-SECRET-12345",
                        "user": "0xed3e79ef16a7890e6eaef2aa6373b6bec5d59d5c",
                        "p": Decimal("60000.10"), "n": n})
    rec.close()
    files = sorted(tmp_path.glob("r.jsonl*"))
    assert len(files) > 1 and (tmp_path / "r.jsonl.1").exists()
    text = "".join(f.read_text() for f in files)
    assert "SECRET" not in text and "0xed3e79ef" not in text
    assert '"p":60000.10' in text  # numbers exactly as received


def test_alertd_record_writes_the_streams_frames(tmp_path, sim):
    import os
    import signal
    import subprocess
    import sys

    from alertd.sim.frames import dd_balance
    from tests.conftest import API_KEY, agent_config
    from tests.conftest import DD_KEY as DD
    from tests.sinks import wait_for

    cfg = agent_config(tmp_path, sim, {"hook": "json://127.0.0.1:9/"})
    out = tmp_path / "rec.jsonl"
    proc = subprocess.Popen([sys.executable, "-m", "alertd", "record", "--config", str(cfg),
                             "--out", str(out)], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "TEST_DD_KEY": API_KEY})
    try:
        assert sim.wait_ready(DD, timeout=20)
        sim.push_deltadefi(API_KEY, dd_balance("420"))
        assert wait_for(lambda: out.exists() and "420" in out.read_text(), 10)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    text = out.read_text()
    assert API_KEY not in text and API_KEY not in err
    assert '"sub_type":"balance"' in text and '"catch_up":' in text


def test_the_readme_rule_test_example_passes(tmp_path, capsys):
    import shutil

    readme = (ROOT / "README.md").read_text()
    block = readme.split("**Rule tests: `alertd test FILE|DIR ...`.**", 1)[1]
    write(tmp_path / "b.test.yaml", block.split("```yaml\n", 1)[1].split("```", 1)[0])
    shutil.copy(ROOT / "rules" / "balances.yaml", tmp_path / "balances.yaml")
    assert main(["test", str(tmp_path)]) == 0, capsys.readouterr().out


def test_replay_sends_with_send_and_shows_progress_on_long_files(tmp_path, capsys):
    import io

    from alertd.authoring.record import Recording
    from alertd.authoring.replay import replay
    from alertd.domain.observations import Source
    from alertd.rules.load import load_rules
    from tests.sinks import HttpSink

    rec = Recording(tmp_path / "rec.jsonl")
    src = Source("main", "deltadefi", "spot")
    for n in range(1200):
        free = "450" if n % 2 else "900"
        rec.frame(src, {"type": "Account", "sub_type": "balance",
                        "balance": [{"asset": "ada", "asset_unit": "", "free": free,
                                     "locked": "0"}]})
    rec.close()
    rules = write(tmp_path / "rules" / "r.yaml", RULES.replace("    message", "    group_wait: 0"
                                                                 "\n    message")).parent
    progress = io.StringIO()
    alerts, counts, problems = replay(tmp_path / "rec.jsonl", load_rules(rules, None),
                                      progress=progress)
    assert problems == [] and counts["lines"] == 1200 and len(alerts) == 600
    assert "replay: 1,000 of 1,200 lines (83%)" in progress.getvalue()
    with HttpSink() as sink:
        cfg = write(tmp_path / "alertd.yaml", f"""
            accounts:
              - {{name: main, exchange: deltadefi, api_key: k-1234567}}
            notifiers:
              phone: "{sink.url}"
            """)
        short = tmp_path / "short.jsonl"
        short.write_text("\n".join((tmp_path / "rec.jsonl").read_text().splitlines()[:4]) + "\n")
        assert main(["replay", str(short), "--rules", str(rules), "--send", "--config",
                     str(cfg)]) == 0
        assert sink.titles() == ["Low ada", "Low ada"]
    assert capsys.readouterr().out.rstrip().endswith("2 alerts in 2 messages (sent)")
