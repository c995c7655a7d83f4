"""The web UI on a phone (390x844), in both themes: no page scrolls sideways, the menu
collapses behind a toggle that opens it, and the buttons an operator taps are on screen and
at least 44 px high."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from engine.types import Proposal, Verdict, VerdictKind
from tests.browser.conftest import (
    ACTION,
    LiveServer,
    open_page,
    page_problems,
    screenshot,
    signed_in,
)
from tests.browser.test_ui import _seed_incident

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
TOUCH_PX = 44  # the smallest comfortable touch target


def _seed_approval(server: LiveServer, host: str) -> int:
    """An open incident on ``host`` waiting for an operator's approval."""
    recorder = server.recorder
    now = time.time()
    incident_id = recorder.incidents.open(
        host, "high_cpu", 99.0, f"CPU 99.0% on {host} for 5m", at=now - 60, since=now - 360
    )
    decision_id = recorder.decisions.record(
        incident_id,
        host,
        Proposal(ACTION, 0.6, "a_very_long_rationale_without_any_spaces_" * 4),
        Verdict(VerdictKind.AWAIT_APPROVAL, ACTION, "needs a human", "approval"),
        now - 30,
    )
    recorder.approvals.request(
        incident_id,
        decision_id,
        host,
        ACTION,
        "moderately sure",
        at=now - 30,
        expires_at=now + 3600,
    )
    return incident_id


@contextmanager
def phone(browser: Browser, server: LiveServer, **options: Any) -> Iterator[Page]:
    """An ``open_page`` page resized to the phone before anything loads."""
    with open_page(browser, server, **options) as tab:
        tab.set_viewport_size(PHONE)
        yield tab


def _scroll_width(tab: Page) -> int:
    return int(tab.evaluate("document.documentElement.scrollWidth"))


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_every_page_fits_a_phone(browser: Browser, live_server: LiveServer, theme: str) -> None:
    incident_id, ident = _seed_incident(live_server, "web1.example.internal")
    _seed_approval(live_server, "web2.example.internal")
    pages = {
        "/": "Needs you",
        "/incidents": "web1.example.internal",
        f"/incidents/{incident_id}": "web1.example.internal",
        "/playbooks": ACTION,
        f"/playbooks/runs/{ident}": ident,
        "/approvals": "web2.example.internal",
        "/maintenance": "Start a window",
        "/users": "ada",
        "/account": "Your account",
    }
    with phone(browser, live_server, color_scheme=theme) as tab:
        tab.goto("/login")
        assert tab.evaluate("document.documentElement.dataset.theme") == theme
        widths = {"/login": _scroll_width(tab)}
        screenshot(tab, f"phone-{theme}-login", "Sign in")
        signed_in(tab, live_server, "admin", f"ada-{theme}")
        for path, shows in pages.items():
            response = tab.goto(path)
            assert response is not None and response.status == 200, path
            tab.wait_for_load_state("load")
            widths[path] = _scroll_width(tab)
            name = "phone-" + theme + "-" + (path.strip("/").replace("/", "-") or "home")
            screenshot(tab, name, shows)
        wide = {path: width for path, width in widths.items() if width > PHONE["width"]}
        assert not wide, f"pages wider than {PHONE['width']} px: {wide}"
        assert not page_problems(tab)


def test_menu_collapses_behind_a_toggle(browser: Browser, live_server: LiveServer) -> None:
    with phone(browser, live_server) as tab:
        signed_in(tab, live_server, "operator")
        tab.goto("/")
        toggle = tab.get_by_role("button", name="Menu")
        nav = tab.locator("nav.nav")
        expect(toggle).to_be_visible()
        expect(toggle).to_have_attribute("aria-expanded", "false")
        expect(nav.get_by_role("link", name="Incidents")).to_be_hidden()
        # What needs a human stays in sight with the menu closed.
        _assert_on_screen_and_tappable(tab, nav.locator(".needs-you-link"))
        header = tab.locator("header.topbar").bounding_box()
        assert header is not None and header["height"] < 80, header
        theme = tab.locator("[data-theme-toggle]")
        _assert_on_screen_and_tappable(tab, theme)
        toggle.click()
        expect(toggle).to_have_attribute("aria-expanded", "true")
        expect(nav).to_be_visible()
        link = nav.get_by_role("link", name="Incidents")
        _assert_on_screen_and_tappable(tab, link)
        with tab.expect_navigation():
            link.click()
        assert tab.url.endswith("/incidents")
        toggle = tab.get_by_role("button", name="Menu")
        expect(toggle).to_have_attribute("aria-expanded", "false")
        screenshot(tab, "phone-menu-closed", "Incidents")
        toggle.click()
        screenshot(tab, "phone-menu-open", "Maintenance")
        assert not page_problems(tab)


def test_menu_is_reachable_without_javascript(browser: Browser, live_server: LiveServer) -> None:
    with phone(browser, live_server, java_script_enabled=False) as tab:
        tab.goto("/login")
        expect(tab.locator("nav.nav")).to_have_count(0)  # signed out: no menu at all
    with phone(browser, live_server) as tab:
        signed_in(tab, live_server, "viewer")
        cookies = tab.context.cookies()
    with phone(browser, live_server, java_script_enabled=False) as tab:
        tab.context.add_cookies(cookies)
        tab.goto("/")
        expect(tab.locator("nav.nav").get_by_role("link", name="Approvals")).to_be_visible()
        assert _scroll_width(tab) <= PHONE["width"]


def test_approve_with_a_thumb(browser: Browser, live_server: LiveServer) -> None:
    _seed_approval(live_server, "web3.example.internal")
    with phone(browser, live_server, has_touch=True) as tab:
        signed_in(tab, live_server, "operator")
        tab.goto("/approvals")
        approve = tab.get_by_role("button", name="Approve").first
        _assert_on_screen_and_tappable(tab, tab.get_by_role("button", name="Reject").first)
        _assert_on_screen_and_tappable(tab, approve)
        screenshot(tab, "phone-approvals", "web3.example.internal")
        with tab.expect_navigation():
            approve.tap()
        expect(tab.locator("main")).to_contain_text("approved")
        assert _scroll_width(tab) <= PHONE["width"]
        assert not page_problems(tab)


def _assert_on_screen_and_tappable(tab: Page, target: Locator) -> None:
    """The element is within the phone's width and at least TOUCH_PX high."""
    target.scroll_into_view_if_needed()
    box = target.bounding_box()
    assert box is not None
    assert box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"], box
    assert box["height"] >= TOUCH_PX, box
