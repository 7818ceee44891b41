"""Hostile or runaway files are bounded where they enter: a YAML bomb, a nesting a hundred
thousand deep, a number of ten thousand digits, a huge file, a folder or a symlink loop named
like a rule file, too many rules. Each is `file:line: message` and exit 1 from `alertd
check`, in little time and memory, and a reload that meets one keeps the old rules and says
so in a "reload failed" alert."""

from __future__ import annotations

import os
import subprocess
import sys
import tracemalloc
from decimal import Decimal
from pathlib import Path

import pytest

from alertd.cli.main import main
from alertd.common import yamlsrc
from alertd.common.yamlsrc import load_yaml
from alertd.domain import observations
from alertd.rules.load import MAX_RULES
from alertd.sim.frames import dd_balance
from tests.conftest import API_KEY, agent_config, running, write
from tests.conftest import DD_KEY as DD
from tests.sinks import HttpSink, wait_for

CONFIG = """
accounts:
  - name: main
    exchange: deltadefi
    api_key: ${DD_KEY}
notifiers:
  trading: "json://127.0.0.1:9/"
"""

RULE = """
rules:
  - name: ok
    on: fill
    notify: [trading]
"""

LAUGHS = "".join(f"{b}: &{b} [{', '.join([f'*{a}'] * 9)}]\n"
                 for a, b in zip("abcdefgh", "bcdefghi", strict=True))
BOMB = 'a: &a ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]\n' + LAUGHS + """\
rules:
  - name: laughs
    on: fill
    when: {symbol: {in: *i}}
    notify: [trading]
"""
"""A billion laughs: nine levels of nine aliases each, 387 million strings once expanded."""


@pytest.fixture
def env(monkeypatch, tmp_path):
    monkeypatch.setenv("DD_KEY", "k-123456")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    cfg = write(tmp_path / "alertd.yaml", CONFIG)
    cfg.chmod(0o600)
    rules = tmp_path / "rules"
    write(rules / "good.yaml", RULE)
    return cfg, rules


def check(cfg: Path, rules: Path, capsys, measure: bool = True) -> tuple[int, str, float]:
    """`alertd check` in this process: exit status, stderr and the peak of memory it took
    (in MiB; 0 unless `measure`, as tracing makes a big load three times slower)."""
    if measure:
        tracemalloc.start()
    try:
        rc = main(["check", "--rules", str(rules), "--config", str(cfg)])
        peak = tracemalloc.get_traced_memory()[1] if measure else 0
    finally:
        tracemalloc.stop()
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return rc, err, peak / 2**20


def test_a_billion_laughs_in_a_rule_file_is_refused_by_counting(env, capsys):
    cfg, rules = env
    bomb = rules / "bomb.yaml"
    bomb.write_text(BOMB)
    rc, err, mib = check(cfg, rules, capsys)
    assert rc == 1 and mib < 50, (rc, mib)
    assert f"{bomb}:6: alias *e takes this file past {yamlsrc.MAX_VALUES} values (each use " \
        "of an alias counts all it stands for); write the values out" in err
    assert err.rstrip().endswith("1 problem found; nothing was started")


def test_a_billion_laughs_in_the_config_is_refused_too(env, capsys):
    cfg, rules = env
    cfg.write_text(CONFIG.lstrip() + BOMB.split("rules:")[0])
    rc, err, mib = check(cfg, rules, capsys)
    assert rc == 1 and mib < 50, (rc, mib)
    assert f"{cfg}:12: alias *e takes this file past {yamlsrc.MAX_VALUES} values" in err


def test_a_billion_laughs_from_the_command_line_exits_1_without_a_traceback(env):
    cfg, rules = env
    (rules / "bomb.yaml").write_text(BOMB)
    done = subprocess.run([sys.executable, "-m", "alertd", "check", "--rules", str(rules),
                           "--config", str(cfg)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "DD_KEY": "k-123456"})
    assert done.returncode == 1, done.stderr
    assert f"{rules / 'bomb.yaml'}:6: alias *e" in done.stderr
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize(("name", "text", "line", "message"), [
    ("flow 100k deep", "rules: " + "[" * 100_000 + "]" * 100_000 + "\n", 1,
     "YAML syntax error: while increasing flow level: exceeded maximum nesting depth"
     "|values nested more than 64 deep"),  # libyaml refuses it first, where it is built
    ("flow 65 deep", "rules:\n  - " + "[" * 64 + "]" * 64 + "\n", 2,
     "values nested more than 64 deep"),
    ("block 65 deep", "rules:\n" + "".join(f"{'  ' * i}k{i}:\n" for i in range(1, 66)), 65,
     "values nested more than 64 deep"),
    ("alias nests deeper", "a: &a " + "[" * 40 + "]" * 40 + "\nb: " + "[" * 30 + "*a"
     + "]" * 30 + "\n", 2, "alias *a nests values more than 64 deep"),
    ("alias inside itself", "a: &a [1, *a]\n", 1, "alias *a is inside the value it names"),
    ("10k-digit integer", RULE + "    when: {qty: {gt: " + "9" * 10_000 + "}}\n", 5,
     "999999999999999999999999999999… (10000 characters) is not a number of at most 40 "
     "digits within 1e-30 to 1e+30"),
    ("10k-digit decimal", RULE + "    when: {qty: {gt: 0." + "9" * 10_000 + "}}\n", 5,
     "(10002 characters) is not a number"),
    ("41 digits", RULE + "    when: {qty: {gt: " + "1" * 41 + "}}\n", 5,
     "is not a number of at most 40 digits"),
    ("huge exponent", RULE + "    when: {qty: {gt: 1e999999999}}\n", 5,
     "1e999999999 is not a number of at most 40 digits within 1e-30 to 1e+30"),
    ("tiny exponent", RULE + "    when: {qty: {gt: 1e-31}}\n", 5, "1e-31 is not a number"),
    ("long text", RULE + '    title: "' + "x" * 20_000 + '"\n', 5,
     "a value longer than 16384 characters"),
    ("bad date", RULE + "    message: 2026-13-45\n", 5,
     "cannot read '2026-13-45' as !!timestamp: month must be in 1..12"),
    ("bad explicit int", RULE + "    message: !!int 0x1f\n", 5,
     "cannot read '0x1f' as a whole number"),
    ("python tag", RULE + "    message: !!python/name:os.system x\n", 5,
     "the YAML tag !!python/name:os.system is not read here"),
])
def test_a_hostile_value_is_file_line_and_exit_1(env, capsys, name, text, line, message):
    cfg, rules = env
    bad = write(rules / "bad.yaml", text)
    rc, err, mib = check(cfg, rules, capsys)
    assert rc == 1 and mib < 50, (rc, mib)
    assert any(said.startswith(f"{bad}:{line}: ") and m in said
               for said in err.splitlines() for m in message.split("|")), err[:2000]


def test_a_file_over_4_mib_is_refused_unread(env, capsys):
    cfg, rules = env
    big = rules / "big.yaml"
    big.write_text(RULE.replace("rules:", "rules:" + " " * (yamlsrc.MAX_FILE_BYTES + 1)))
    rc, err, mib = check(cfg, rules, capsys)
    assert rc == 1 and mib < 50, (rc, mib)
    assert f"{big}:1: file is larger than 4 MiB; split it into several files" in err


def test_more_values_than_a_file_may_hold_is_refused(env, capsys):
    cfg, rules = env
    many = write(rules / "many.yaml", RULE.replace("rules:", "junk: [" + "0," * yamlsrc.MAX_VALUES
                                                   + "0]\nrules:"))
    rc, err, _ = check(cfg, rules, capsys, measure=False)
    assert rc == 1
    assert f"{many}:1: more than {yamlsrc.MAX_VALUES} values in one file" in err


def test_a_folder_named_like_a_rule_file_is_reported_and_its_rules_still_read(env, capsys):
    cfg, rules = env
    folder = rules / "x.yaml"
    write(folder / "inner.yaml", "rules:\n  - name: inner\n    on: fill\n    notify: [nope]\n")
    rc, err, _ = check(cfg, rules, capsys)
    assert rc == 1
    assert f"{folder}:1: a folder, not a rule file; rename it so it does not end in .yaml" in err
    assert f"{folder / 'inner.yaml'}:4: rule 'inner': unknown notifier 'nope'" in err


def test_symlink_loops_are_reported_and_never_followed(env, capsys):
    cfg, rules = env
    (rules / "a.yaml").symlink_to("b.yaml")
    (rules / "b.yaml").symlink_to("a.yaml")
    (rules / "gone.yml").symlink_to("nowhere.yml")
    (rules / "sub").mkdir()
    (rules / "sub" / "up").symlink_to("..")  # a folder loop: symlinked folders are not walked
    (rules / ".#good.yaml").symlink_to("user@host.123")  # an editor's lock: skipped
    rc, err, _ = check(cfg, rules, capsys)
    assert rc == 1
    assert f"{rules / 'a.yaml'}:1: a symbolic link loop, not a rule file; remove the link" in err
    assert f"{rules / 'b.yaml'}:1: a symbolic link loop" in err
    assert f"{rules / 'gone.yml'}:1: a symbolic link to nowhere.yml, which does not exist" in err
    assert err.rstrip().endswith("3 problems found; nothing was started")


def test_more_rules_than_the_bound_say_which_is_one_too_many(env, capsys):
    cfg, rules = env
    (rules / "good.yaml").unlink()
    many = rules / "many.yaml"
    many.write_text("rules:\n" + "".join(f"  - {{name: r{i}, on: fill, notify: [trading]}}\n"
                                         for i in range(MAX_RULES + 1)))
    rc, err, _ = check(cfg, rules, capsys, measure=False)
    assert rc == 1
    assert f"{many}:{MAX_RULES + 2}: this is rule number {MAX_RULES + 1}; alertd loads at " \
        f"most {MAX_RULES} rules (in all files together)" in err


def test_the_bound_counts_rules_in_all_files(env, capsys):
    cfg, rules = env
    (rules / "good.yaml").unlink()
    half = MAX_RULES // 2
    for part in ("a", "b", "c"):
        write(rules / f"{part}.yaml", "rules:\n" + "".join(
            f"  - {{name: {part}{i}, on: fill, notify: [trading]}}\n" for i in range(half)))
    rc, err, _ = check(cfg, rules, capsys, measure=False)
    assert rc == 1
    assert f"{rules / 'c.yaml'}:2: this is rule number {2 * half + 1}" in err


def test_10000_rules_load(env, capsys):
    """At the bound, everything loads (in about a second; the time is in the report, not
    asserted here)."""
    cfg, rules = env
    (rules / "good.yaml").write_text("rules:\n" + "".join(
        f"  - name: r{i}\n    on: fill\n    when: {{symbol: S{i}, quote_qty: {{gte: 1000}}}}\n"
        "    notify: [trading]\n" for i in range(MAX_RULES)))
    assert main(["check", "--rules", str(rules), "--config", str(cfg)]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {MAX_RULES} rules ({MAX_RULES} fill)")


def test_aliases_within_the_bounds_still_work_and_merge(tmp_path):
    data = load_yaml(write(tmp_path / "m.yaml", """
defaults: &defaults {on: fill, notify: [trading], severity: info}
rules:
  - <<: *defaults
    name: a
    severity: success
  - {<<: [*defaults], name: b}
"""))
    a, b = data["rules"]
    assert a == {"on": "fill", "notify": ["trading"], "severity": "success", "name": "a"}
    assert b == {"on": "fill", "notify": ["trading"], "severity": "info", "name": "b"}
    assert a.line_of("severity") == 5 and a.line_of("notify") == 1  # where each is written


def test_the_number_bounds_are_the_wire_amount_bounds(tmp_path):
    """The YAML loader cannot import the domain stage, so it repeats its numbers: the same."""
    assert (yamlsrc.MAX_DIGITS, yamlsrc.MAX_EXPONENT) == (observations.MAX_DIGITS,
                                                          observations.MAX_EXPONENT)
    path = write(tmp_path / "n.yaml", f"a: {'9' * 40}\nb: 1e30\nc: -1e-30\nd: 0.5\n")
    assert load_yaml(path) == {"a": int("9" * 40), "b": Decimal("1e30"),
                               "c": Decimal("-1e-30"), "d": Decimal("0.5")}


def test_a_reload_meeting_a_yaml_bomb_says_so_and_keeps_the_old_rules(tmp_path, sim):
    rules = tmp_path / "rules"
    write(rules / "r.yaml", """
rules:
  - name: low
    on: balance
    when: {asset: ada, free: {lt: 500}}
    notify: [hook]
    group_wait: 0
    title: "low {free}"
""")
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        with running(cfg, rules) as agent:
            before = agent.pipeline.rules
            bomb = rules / "bomb.yaml"
            bomb.write_text(BOMB.replace("trading", "hook"))
            tracemalloc.start()
            try:
                assert agent.reload() is False
                peak = tracemalloc.get_traced_memory()[1]
            finally:
                tracemalloc.stop()
            assert peak < 50 * 2**20, peak
            assert wait_for(lambda: "alertd: reload failed" in sink.titles(), 20)
            failure = next(p for p in sink.posts if p["title"] == "alertd: reload failed")
            assert f"{bomb}:6: alias *e takes this file past" in failure["message"]
            assert agent.pipeline.rules is before
            assert sim.wait_ready(DD, timeout=20)
            sim.push_deltadefi(API_KEY, dd_balance("100"))
            assert wait_for(lambda: "low 100" in sink.titles(), 20)  # the old rules still work


def test_a_reload_whose_loader_fails_otherwise_still_sends_reload_failed(tmp_path, sim):
    rules = tmp_path / "rules"
    write(rules / "r.yaml", "rules:\n  - {name: f, on: fill, notify: [hook]}\n")
    with HttpSink() as sink:
        cfg = agent_config(tmp_path, sim, {"hook": sink.url}, markets="[spot]")
        with running(cfg, rules) as agent:
            before = agent.pipeline.rules

            def broken():
                raise MemoryError

            agent._loader = broken
            assert agent.reload() is False
            assert wait_for(lambda: "alertd: reload failed" in sink.titles(), 20)
            failure = next(p for p in sink.posts if p["title"] == "alertd: reload failed")
            assert "could not load the files (MemoryError: no detail)" in failure["message"]
            assert agent.pipeline.rules is before
