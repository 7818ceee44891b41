"""The Apprise adapter against a real HTTP receiver."""

from __future__ import annotations

import json

import pytest

from alertd.common.errors import LoadError
from alertd.delivery.notify import TRUNCATED, DeliveryError, build_notifiers

TELEGRAM = "tgram://123456789:abcdefg_hijklmnop/12315544"


def test_long_text_is_cut_with_a_marker_not_rejected(http_sink):
    hook = build_notifiers({"hook": (http_sink.url,)}, "cfg")["hook"]
    hook.send("T" * 300, "x" * 40_000, "warning")
    post = http_sink.posts[0]
    assert post["type"] == "warning"
    assert len(post["message"]) <= 32_768 and post["message"].endswith(TRUNCATED)
    assert len(post["title"]) <= 250 and post["title"].endswith("…")


def test_telegram_limit_leaves_room_for_the_title_apprise_folds_in():
    phone = build_notifiers({"phone": (TELEGRAM,)}, "cfg")["phone"]
    assert phone._body_limit == 4096 and phone._title_limit == 0


def test_failed_send_raises_for_the_outbox_to_retry(http_sink):
    http_sink.fail_next = 1
    hook = build_notifiers({"hook": (http_sink.url,)}, "cfg")["hook"]
    with pytest.raises(DeliveryError):
        hook.send("t", "b", "info")
    hook.send("t", "b", "info")
    assert len(http_sink.posts) == 1


def test_url_that_loads_no_service_names_the_notifier_and_hides_secrets():
    with pytest.raises(LoadError) as err:
        build_notifiers({"pager": ("json://127.0.0.1:9/", "nosuch://user:hunter2@host/x")},
                        "alertd.yaml", {"pager": 12})
    text = str(err.value)
    assert text.startswith("alertd.yaml:12: notifier 'pager': URL #2")
    assert "hunter2" not in text


def test_the_schemes_read_from_apprise_s_sources_are_schemes_apprise_knows():
    """`alertd check` trusts this list instead of loading Apprise: an Apprise upgrade that
    declares schemes differently must fail here, not let a typo through."""
    import apprise

    from alertd.delivery.notify import plugin_schemes

    read = plugin_schemes()
    assert {"json", "slack", "tgram", "mailto", "discord"} <= read
    details = apprise.Apprise().details(show_disabled=True)["schemas"]
    known = {scheme for plugin in details for key in ("protocols", "secure_protocols")
             for scheme in plugin.get(key) or ()}
    assert read <= known, sorted(read - known)


LOAD_ONLY = """
import json, sys
from apprise.manager_plugins import NotificationManager
from alertd.delivery.notify import build_notifiers
manager = NotificationManager()
build_notifiers({"hook": ("json://127.0.0.1:9/", "mailto://trader:pw@example.com")}, "a.yaml")
first = len(manager)
build_notifiers({"chat": ("tgram://123456789:abcdefg_hijklmnop/12315544/",)}, "a.yaml")
second = len(manager)
build_notifiers({"slack": ("https://hooks.slack.com/services/T1JJ3T3L2/A1BRTD4JD/TIiajkdnl",)},
                "a.yaml")
print(json.dumps([first, second, len(manager)]))
"""


def test_only_the_plugins_the_urls_name_are_loaded_until_a_native_url_needs_them_all():
    """Every plugin is ~20 MB of the daemon's memory (issue 19); a native https:// webhook
    can only be matched by asking every plugin, so it loads them all."""
    import subprocess
    import sys

    out = subprocess.run([sys.executable, "-c", LOAD_ONLY], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    first, second, everything = json.loads(out)
    assert (first, second) == (2, 3)
    assert everything > 100
