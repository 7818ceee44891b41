"""`alertd demo` as a user runs it: a real process, the simulator, the example rules."""

from __future__ import annotations

import re
import subprocess
import sys


def test_demo_shows_fills_low_balance_and_league_change_and_exits_by_itself():
    proc = subprocess.run([sys.executable, "-m", "alertd", "demo"], capture_output=True,
                          text=True, timeout=90)
    out = proc.stdout
    assert proc.returncode == 0, out + proc.stderr
    assert "ALERT -> trading: buy ADAUSDM: 800 @ 0.93" in out
    assert "ALERT -> trading: buy ADAUSDM: 1200 @ 0.93" in out
    assert "ALERT -> phone: Low ADA on main" in out
    assert "ALERT -> trading: League up: silver -> gold" in out
    assert "ALERT -> trading: sodex stream disconnected: desk" in out
    assert "ALERT -> trading: sodex stream back: desk" in out
    assert out.count("ALERT -> phone: Low ADA on main") == 1
    assert out.count("ALERT -> phone: Resolved: Low ADA on main") == 1
    assert out.count("buy ADAUSDM: 800 @ 0.93") == 1
    assert out.count("ALERT -> trading: buy vBTC_vUSDC: 0.5 @ 60000 (2 fills)") == 1
    assert "vBTC_vUSDC: 0.2 @" not in out
    assert out.count("ALERT -> phone: Liquidated on desk: long BTC-USD") == 1
    assert "0.5 at mark 52000 (liquidation price 51900), cross margin" in out
    assert out.count("ALERT -> trading: High margin use on desk") == 1
    assert out.count("ALERT -> trading: Resolved: High margin use on desk") == 1
    assert out.index("High margin use") < out.index("Liquidated on desk")
    assert "demo finished: every alert once, none repeated" in out
    assert "Traceback" not in proc.stderr
    stopped = out.index("alertd stops. While it is down")
    assert out.count("buy ADAUSDM: 500 @ 0.93") == 1 and out.index("500 @ 0.93") > stopped
    assert out.count("ALERT -> trading: buy NIGHTUSDM: 40 @ 0.052") == 1  # the second pair
    assert out.index("NIGHTUSDM: 40 @") > stopped
    assert "missed while away: yes" in out[stopped:]
    assert "missed while away: no" in out[:stopped]


def test_demo_sends_every_alert_once_to_an_apprise_url_too(http_sink):
    proc = subprocess.run([sys.executable, "-m", "alertd", "demo", "--notify", http_sink.url],
                          capture_output=True, text=True, timeout=90)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    alerts, messages = map(int, re.search(r"summary: \d+ frames, (\d+) alerts in (\d+) "
                                          r"messages", proc.stdout).groups())
    sent = [(p["title"], p["message"]) for p in http_sink.posts]
    assert len(sent) == messages == len(set(sent)) and alerts > messages
    assert ("League up: silver -> gold", "main now has 10150 points (5150 this season)") in sent


def test_demo_says_when_a_notify_url_took_nothing(capsys):
    from alertd.sim.demo import run_demo

    assert run_demo(notify_urls=["json://127.0.0.1:9/"], pause=0.05) == 1
    out = capsys.readouterr().out
    assert "--notify json://127.0.0.1:9/: took nothing" in out
    assert "every alert once" not in out
