"""Times in the viewer's zone: a browser in New York sees each time in EST/EDT with a
relative time beside it; the UTC original stays in the title; content the live refresh
replaces is localised too, and the relative times move on every 30 s."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Browser, expect

from tests.browser.conftest import LiveServer, open_page, page_problems, screenshot, signed_in

pytestmark = pytest.mark.browser

NEW_YORK = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d E[SD]T \((just now|\d+ (s|min|h|d) ago)\)$")
CLOCK = re.compile(r"^\d\d:\d\d:\d\d E[SD]T$")
UTC_TEXT = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC$")
REFRESH_MS = 30_000  # times.js re-renders relative times this often
STATUS_POLL_MS = 5_000  # the status bar's poll (webui/freshness.py)


def test_times_show_in_the_viewers_zone_with_a_relative_time(
    browser: Browser, live_server: LiveServer
) -> None:
    now = time.time()
    incident = live_server.recorder.incidents.open(
        "web1", "high_cpu", 97.0, "CPU 97.0% on web1", at=now - 125, since=now - 400
    )
    with open_page(browser, live_server, timezone_id="America/New_York") as tab:
        signed_in(tab, live_server, "viewer")
        tab.clock.install()
        tab.goto(f"/incidents/{incident}")
        opened = tab.locator("dd time").first
        expect(opened).to_have_text(NEW_YORK)
        expect(opened).to_contain_text("2 min ago")
        assert UTC_TEXT.match(opened.get_attribute("title") or ""), opened.get_attribute("title")
        # The UTC original, shifted to New York, is what is shown.
        stamp = opened.get_attribute("datetime") or ""
        expected = tab.evaluate(
            """(s) => new Date(s).toLocaleString("en-CA", {timeZone: "America/New_York",
                hourCycle: "h23", year: "numeric", month: "2-digit", day: "2-digit",
                hour: "2-digit", minute: "2-digit", second: "2-digit"}).replace(",", "")""",
            stamp,
        )
        assert (opened.text_content() or "").startswith(expected), (expected, opened.text_content())
        screenshot(tab, "times-new-york", re.compile(r"E[SD]T"), "ago")
        # Relative times move on without a reload.
        tab.clock.fast_forward(REFRESH_MS * 4 + 1_000)
        expect(opened).to_contain_text(re.compile(r"\b(4|5|6) min ago"))
        # The status bar is replaced by its poll: its time is localised again.
        as_of = tab.locator(".status-bar time")
        expect(as_of).to_have_text(CLOCK)
        tab.evaluate("document.querySelector('.status-bar time').textContent = 'stale'")
        tab.clock.fast_forward(STATUS_POLL_MS + 500)
        expect(as_of).to_have_text(CLOCK)
        assert not page_problems(tab)


def test_without_javascript_times_read_as_utc(browser: Browser, live_server: LiveServer) -> None:
    now = time.time()
    incident = live_server.recorder.incidents.open(
        "web2", "high_cpu", 97.0, "CPU 97.0% on web2", at=now - 60, since=now - 400
    )
    with open_page(browser, live_server, timezone_id="America/New_York") as tab:
        signed_in(tab, live_server, "viewer")
        cookies = tab.context.cookies()
    options = {"timezone_id": "America/New_York", "java_script_enabled": False}
    with open_page(browser, live_server, **options) as tab:
        tab.context.add_cookies(cookies)
        tab.goto(f"/incidents/{incident}")
        expect(tab.locator("dd time").first).to_have_text(UTC_TEXT)
