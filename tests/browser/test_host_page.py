"""The host page and the incident page's CPU chart in Chromium: no sideways scroll at desktop
width or on a phone, no console errors or CSP violations, the chart's axis in the viewer's
zone, and the "run a playbook here" form reaching the run's confirmation with the host."""

from __future__ import annotations

import time

import pytest
from playwright.sync_api import Browser, Page, ViewportSize, expect

from tests.browser.conftest import (
    ACTION,
    LiveServer,
    open_page,
    page_problems,
    screenshot,
    signed_in,
)
from tests.webui.test_host_page import _story

pytestmark = pytest.mark.browser

HOST = "localhost"  # the live server's inventory host
WIDTHS: dict[str, ViewportSize] = {
    "desktop": {"width": 1280, "height": 800},
    "phone": {"width": 390, "height": 844},
}


def _fits(tab: Page) -> None:
    width = tab.evaluate("document.documentElement.scrollWidth")
    inner = tab.evaluate("window.innerWidth")
    assert width <= inner, f"{tab.url} scrolls sideways: {width} > {inner}"


@pytest.mark.parametrize("size", list(WIDTHS))
def test_host_and_incident_charts_fit_and_load_cleanly(
    browser: Browser, live_server: LiveServer, size: str
) -> None:
    at = _story(live_server.sessions, HOST, time.time())
    with open_page(browser, live_server, timezone_id="America/New_York") as tab:
        tab.set_viewport_size(WIDTHS[size])
        signed_in(tab, live_server, "operator")
        response = tab.goto(f"/hosts/{HOST}")
        assert response is not None and response.status == 200
        tab.wait_for_load_state("load")
        chart = tab.locator("#cpu-history svg.chart")
        expect(chart).to_be_visible()
        expect(chart.locator("[data-marker=detected]")).to_have_count(1)
        expect(chart.locator("[data-marker=run]")).to_have_count(1)
        expect(chart.locator("[data-marker=verified]")).to_have_count(1)
        # chart.js put the axis in the viewer's zone (New York, not the server's UTC).
        expect(tab.locator("#cpu-history [data-chart-zone]")).to_have_text("EST")
        _fits(tab)
        screenshot(
            tab, f"host-page-{size}", f"Host {HOST}", "Run a playbook here", "Failure memory"
        )
        tab.goto(f"/incidents/{int(at['incident'])}")
        tab.wait_for_load_state("load")
        # Loaded after the page (app.js), and put in the viewer's zone like the host's.
        expect(tab.locator("#incident-chart [data-marker=detected]")).to_have_count(1)
        expect(tab.locator("#incident-chart [data-chart-zone]")).to_have_text("EST")
        expect(tab.locator("#incident-chart [data-load-pending]")).to_have_count(0)
        _fits(tab)
        screenshot(tab, f"incident-chart-{size}", "CPU around this incident")
        assert not page_problems(tab)


def test_an_incident_chart_that_does_not_load_says_so(
    browser: Browser, live_server: LiveServer
) -> None:
    at = _story(live_server.sessions, HOST, time.time())
    with open_page(browser, live_server) as tab:
        signed_in(tab, live_server, "viewer")
        # No answer (an abort is what the browser reports for a connection that died).
        tab.route("**/chart", lambda route: route.abort("aborted"))
        tab.goto(f"/incidents/{int(at['incident'])}")
        expect(tab.locator("#incident-chart [data-load-failed]")).to_be_visible()
        expect(tab.locator("#incident-chart [data-load-pending]")).to_be_hidden()
        expect(tab.locator("[data-live-part=story]")).to_be_visible()  # the page is whole


def test_run_here_reaches_the_confirmation_with_the_host(
    browser: Browser, live_server: LiveServer
) -> None:
    with open_page(browser, live_server) as tab:
        signed_in(tab, live_server, "operator")
        tab.goto(f"/hosts/{HOST}")
        form = tab.locator("#run-here form")
        form.locator("input[name=reason]").fill("checking the host page's form")
        with tab.expect_navigation():
            form.get_by_role("button", name=f"{ACTION}…").click()
        assert tab.url.endswith(f"/playbooks/{ACTION}/run")
        confirm = tab.locator("input[name=confirm][value=yes]")
        expect(confirm).to_have_count(1)
        expect(tab.locator("form input[name=hosts]")).to_have_value(HOST)
        screenshot(tab, "host-page-run-confirm", HOST, "checking the host page's form")
        assert not page_problems(tab)
