"""Acknowledge and resolve from the incident page in a real Chromium: both land in the
timeline with who did it; the handling card fits a phone; no console error, no CSP
violation (the page fixture fails the test on either)."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import LiveServer, open_page, screenshot, signed_in

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}


def _incident(server: LiveServer, host: str = "localhost") -> int:
    now = time.time()
    return server.recorder.incidents.open(
        host, "high_cpu", 97.0, f"CPU 97.0% on {host} for 1m", at=now - 60, since=now - 120
    )


def test_acknowledge_and_resolve_from_the_incident_page(
    live_server: LiveServer, page: Page
) -> None:
    incident_id = _incident(live_server)
    user = signed_in(page, live_server, "operator", "oncall")
    page.goto(f"/incidents/{incident_id}")
    card = page.locator("#handling")
    expect(card).to_contain_text("Not acknowledged.")

    card.locator("form:has(#acknowledge) input[name=note]").fill("on it <b>{{ 7*7 }}</b>")
    with page.expect_navigation():
        page.locator("#acknowledge").click()
    expect(page.locator("#acknowledged")).to_contain_text(f"Acknowledged by {user.name}")
    timeline = page.locator("ol.timeline")
    expect(timeline).to_contain_text(
        f"{user.name} acknowledged the incident: on it <b>{{{{ 7*7 }}}}</b>"
    )

    page.locator("details.confirm summary", has_text="Resolve by hand").click()
    page.locator("textarea[name=note]").fill("load test, planned")
    with page.expect_navigation():
        page.locator("#resolve").click()
    expect(page.locator("#resolved-by")).to_contain_text(f"Resolved by {user.name}")
    expect(timeline).to_contain_text(f"resolved by {user.name}: load test, planned")
    expect(page.locator("h1 .badge")).to_have_text("resolved")
    expect(page.locator("#acknowledge")).to_have_count(0)  # closed: no more actions
    screenshot(page, "incident-acknowledged-and-resolved", "resolved by", "acknowledged")


def test_the_handling_card_fits_a_phone(browser: Browser, live_server: LiveServer) -> None:
    incident_id = _incident(live_server)
    with open_page(browser, live_server) as tab:
        tab.set_viewport_size(PHONE)
        signed_in(tab, live_server, "operator")
        tab.goto(f"/incidents/{incident_id}")
        tab.locator("details.confirm summary", has_text="Resolve by hand").click()
        expect(tab.locator("#resolve")).to_be_visible()
        width = tab.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"the incident page is {width} px wide at 390 px"
        box = tab.locator("#acknowledge").bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"]
        screenshot(tab, "incident-handling-phone", "I am on it")
