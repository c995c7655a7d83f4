"""Every page of the web UI, found from the app's own routes: each role, both themes, at
desktop width. Each page is screenshotted (test-output/screenshots/every-*.png), must load
without console errors, CSP violations or failed requests, and must not scroll sideways.
A new page fails the first test until it is listed here, so no page goes unchecked."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import (
    ACTION,
    LiveServer,
    open_page,
    page_problems,
    screenshot,
    signed_in,
)
from tests.browser.test_phone import _seed_approval
from tests.browser.test_ui import _seed_incident

pytestmark = pytest.mark.browser

HOST = "web1.example.internal"
# Routes answered with a whole page, as a path template (the seeded ids fill it) and what
# the page must show; the roles that may open it (others get 403).
PAGES: dict[str, tuple[str, tuple[str, ...]]] = {
    "/": ("Needs you", ("viewer", "operator", "admin")),
    "/incidents": (HOST, ("viewer", "operator", "admin")),
    "/incidents/<id:incident_id>": (HOST, ("viewer", "operator", "admin")),
    "/hosts/<path:name>": (HOST, ("viewer", "operator", "admin")),
    "/approvals": ("Approvals", ("viewer", "operator", "admin")),
    "/playbooks": ("Playbooks", ("viewer", "operator", "admin")),
    "/playbooks/runs/<ident:ident>": ("{ident}", ("viewer", "operator", "admin")),
    "/playbooks/<name>/run": (ACTION, ("operator", "admin")),
    "/maintenance": ("Maintenance", ("viewer", "operator", "admin")),
    "/users": ("Users", ("admin",)),
    "/account": ("Your account", ("viewer", "operator", "admin")),
}
# GET routes that are not pages, and why they are checked elsewhere.
NOT_PAGES = re.compile(
    r"^/(api/|static/|metrics$|healthz$|readyz$|favicon)"  # API, assets, probes
    r"|^/dashboard/(hosts|summary)$|^/status/|/progress$|/live$"  # fragments the pages poll
    r"|^/incidents/<id:incident_id>/chart$"  # loaded by the incident page (its test waits)
    r"|fragment|\.csv$|/download|/artifacts?"  # exports, downloads
    r"|^/logout$|^/login$"  # signing in and out (tests/browser/test_sessions.py)
)


def _rules(server: LiveServer) -> set[str]:
    return {
        rule.rule
        for rule in server.app.url_map.iter_rules()
        if "GET" in (rule.methods or ()) and not NOT_PAGES.search(rule.rule)
    }


def test_every_page_route_is_listed(live_server: LiveServer) -> None:
    unlisted = _rules(live_server) - set(PAGES)
    assert not unlisted, f"pages not checked by this file, add them to PAGES: {sorted(unlisted)}"


@pytest.mark.parametrize(
    ("role", "theme"),
    [("admin", "light"), ("admin", "dark"), ("operator", "dark"), ("viewer", "light")],
)
def test_every_page_loads_clean_for_each_role(
    browser: Browser, live_server: LiveServer, role: str, theme: str
) -> None:
    incident_id, ident = _seed_incident(live_server, HOST)
    _seed_approval(live_server, "web2.example.internal")
    values = {"incident_id": str(incident_id), "ident": ident, "name": ACTION, "host": HOST}
    wide: dict[str, int] = {}
    with open_page(browser, live_server, color_scheme=theme) as tab:
        signed_in(tab, live_server, role, f"{role}-{theme}")
        for template, (shows, roles) in PAGES.items():
            named = values | ({"name": HOST} if template.startswith("/hosts/") else {})
            path = re.sub(r"<(?:\w+:)?(\w+)>", lambda m, n=named: n[m.group(1)], template)
            if role not in roles:  # asked with the page's cookies, outside the page
                refused = tab.context.request.get(path, max_redirects=0)
                assert refused.status == 403, f"{role} opened {path}: {refused.status}"
                continue
            response = tab.goto(path)
            assert response is not None, path
            assert response.status == 200, f"{path}: {response.status}"
            tab.wait_for_load_state("load")
            width = int(tab.evaluate("document.documentElement.scrollWidth"))
            if width > int(tab.evaluate("window.innerWidth")):
                wide[path] = width
            name = re.sub(r"[^a-z0-9]+", "-", path.lower()).strip("-") or "home"
            screenshot(tab, f"every-{role}-{theme}-{name}", shows.format(ident=ident))
        assert not page_problems(tab), page_problems(tab)
    assert not wide, f"pages wider than the window: {wide}"
