"""Freshness in a real browser: the stale banner once the engine's stats stop, the offline
marker once the server stops answering, what needs a human first; both themes legible.

The engine's publishes are written straight to the store by a LivePublisher in a thread
(as the engine does each tick); the page's poll timers run on Playwright's clock.
"""

from __future__ import annotations

import dataclasses
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from playwright.sync_api import Browser, Locator, Page, expect
from werkzeug.serving import BaseWSGIServer, make_server

from engine.components import Components
from engine.incident.life import IncidentStatus
from engine.record.live import LivePublisher
from engine.types import HostState, HostStatus
from tests.browser.conftest import (
    CSP_LISTENER,
    HOST,
    STOP_TIMEOUT,
    LiveServer,
    Problems,
    login,
    make_user,
    page_problems,
    screenshot,
    signed_in,
)
from webui.db import COMPONENTS_KEY

pytestmark = pytest.mark.browser

INTERVAL = 0.5  # the engine's tick interval, as the web UI is told: late after 1.5 s
POLL_MS = 5_000  # the status bar's poll (webui/freshness.py POLL_SECONDS)


@pytest.fixture
def fast_ticks(live_server: LiveServer) -> LiveServer:
    """The live server, told that the engine ticks every INTERVAL seconds."""
    settings = dataclasses.replace(live_server.settings, interval=INTERVAL)
    live_server.app.extensions[COMPONENTS_KEY] = Components(settings, sessions=live_server.sessions)
    return live_server


@contextmanager
def ticking(server: LiveServer) -> Iterator[threading.Event]:
    """An "engine" publishing localhost's state and its stats every 0.1 s until the event
    is set (or the block ends)."""
    stop = threading.Event()
    publisher = LivePublisher(server.sessions, every=0.0)

    def run() -> None:
        while not stop.is_set():
            now = time.time()
            state = HostState("localhost", HostStatus.NORMAL, 12.0, now - 60, "ok", now)
            publisher.publish({"localhost": state}, {}, 0.01)
            stop.wait(0.1)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield stop
    finally:
        stop.set()
        thread.join(STOP_TIMEOUT)
        assert not thread.is_alive()


def test_stale_banner_appears_when_the_engine_stops(fast_ticks: LiveServer, page: Page) -> None:
    server = fast_ticks
    with ticking(server) as stop:
        time.sleep(0.3)  # a few publishes
        signed_in(page, server, "viewer")
        page.clock.install()  # the poll timers run on demand
        page.goto("/")
        expect(page.locator(".status-bar")).to_contain_text("Engine: last tick")
        expect(page.locator(".stale-banner")).to_have_count(0)
        page.clock.fast_forward(POLL_MS + 500)
        expect(page.locator(".status-bar")).to_contain_text("Store: ok")
        expect(page.locator(".stale-banner")).to_have_count(0)
        page.evaluate("window.__sameDocument = true")
        stop.set()  # the engine stops
        started = time.monotonic()
        time.sleep(3 * INTERVAL + 0.5)  # past three intervals without a tick
        for _ in range(3):  # within a few refreshes
            page.clock.fast_forward(POLL_MS + 500)
            if page.locator(".stale-banner").count():
                break
            time.sleep(0.5)
        banner = page.locator(".stale-banner")
        expect(banner).to_contain_text("The engine's last tick was", timeout=5_000)
        assert time.monotonic() - started < 10
        assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
        for theme in ("light", "dark"):
            page.evaluate(f"document.documentElement.setAttribute('data-theme', '{theme}')")
            assert contrast(page, ".stale-banner p") >= 4.5, theme
            assert contrast(page, ".fresh-bad") >= 4.5, theme
        screenshot(page, "freshness-stale-banner", "may be stopped")
        assert not page_problems(page)


def test_needs_you_first_and_counted_in_the_menu(live_server: LiveServer, page: Page) -> None:
    recorder = live_server.recorder
    now = time.time()
    incident = recorder.incidents.open(
        "localhost", "high_cpu", 100.0, "CPU 100.0% on localhost", at=now, since=now - 60
    )
    recorder.incidents.set_status(
        incident, IncidentStatus.ESCALATED, now, "escalated", "gave up: a human must look"
    )
    signed_in(page, live_server, "viewer")
    page.goto("/")
    needs = page.locator("#needs-you + table")
    expect(needs).to_contain_text("escalated")
    expect(page.locator(".needs-you-link")).to_contain_text("1")
    screenshot(page, "dashboard-needs-you", "Needs you", "gave up: a human must look")
    page.goto("/approvals")
    expect(page.locator(".needs-you-link")).to_contain_text("1")  # every page
    page.goto("/")
    with page.expect_navigation():
        needs.locator(f'a[href="/incidents/{incident}"]').click()
    assert page.url.endswith(f"/incidents/{incident}")
    assert not page_problems(page)


def serve(server: LiveServer, port: int = 0) -> tuple[BaseWSGIServer, threading.Thread]:
    """Another werkzeug server on the live server's app (so that the test can stop it)."""
    for attempt in range(20):  # the port just closed may linger a moment
        try:
            wsgi: BaseWSGIServer = make_server(HOST, port, server.app, threaded=True)
            break
        except OSError:
            if attempt == 19:
                raise
            time.sleep(0.1)
    thread = threading.Thread(target=wsgi.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    return wsgi, thread


def stop(wsgi: BaseWSGIServer, thread: threading.Thread) -> None:
    """Stop a server ``serve`` started, and wait for its thread."""
    wsgi.shutdown()
    wsgi.server_close()
    thread.join(STOP_TIMEOUT)
    assert not thread.is_alive(), "the test's web server did not stop"


def refresh_until(tab: Page, marker: Locator, *, visible: bool, refreshes: int = 4) -> None:
    """Run the poll timers until the marker is shown (or hidden): a refresh still in flight
    from before skips one round (no overlapping requests), so allow a few."""
    for _ in range(refreshes):
        tab.clock.fast_forward(POLL_MS + 500)
        try:
            if visible:
                expect(marker).to_be_visible(timeout=2_000)
            else:
                expect(marker).to_be_hidden(timeout=2_000)
        except AssertionError:
            continue
        return
    raise AssertionError(f"the offline marker not {'shown' if visible else 'hidden'}")


def test_offline_marker_when_the_server_stops(browser: Browser, live_server: LiveServer) -> None:
    wsgi, thread = serve(live_server)
    port = wsgi.server_port
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=f"http://{HOST}:{port}"
    )
    context.set_default_timeout(10_000)
    context.add_init_script(CSP_LISTENER)
    tab = context.new_page()
    problems = Problems()
    tab.on("console", problems.console)
    tab.on("pageerror", problems.page_error)
    tab.on("requestfailed", problems.failed)
    running = True
    try:
        login(tab, make_user(live_server, "viewer").name)
        tab.clock.install()
        tab.goto("/incidents")
        marker = tab.locator("[data-offline-marker]")
        expect(marker).to_be_hidden()
        tab.clock.fast_forward(POLL_MS + 500)
        expect(marker).to_be_hidden()
        stop(wsgi, thread)  # the server stops answering
        running = False
        refresh_until(tab, marker, visible=True)
        expect(marker).to_contain_text("Offline: the server is not answering")
        screenshot(tab, "freshness-offline", "Offline")
        wsgi, thread = serve(live_server, port)  # back: the next refresh hides the marker
        running = True
        refresh_until(tab, marker, visible=False)
    finally:
        if running:
            stop(wsgi, thread)
        context.close()
    # The refused polls are the point, and the browser may ask for the favicon while the
    # server is down too (found failing CI once); anything else (CSP, script errors) is not.
    refused = re.compile(
        r"GET .*/(status/|static/favicon\.svg).*net::ERR_|Failed to load resource: net::ERR_"
    )
    others = [item for item in problems.items if not refused.search(item)]
    assert not others, "\n".join(others)
    assert any("/status/" in item for item in problems.items), problems.items


def _rgb(css: str) -> tuple[float, float, float]:
    red, green, blue = (float(v) / 255 for v in re.findall(r"[\d.]+", css)[:3])
    return red, green, blue


def _lum(css: str) -> float:
    def channel(c: float) -> float:
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    red, green, blue = (channel(c) for c in _rgb(css))
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def contrast(tab: Page, selector: str) -> float:
    """The WCAG contrast ratio of the element's text against its nearest opaque background."""
    colors = tab.evaluate(
        """(selector) => {
            let el = document.querySelector(selector);
            const fg = getComputedStyle(el).color;
            let bg = "rgba(0, 0, 0, 0)";
            while (el && (bg === "rgba(0, 0, 0, 0)" || bg === "transparent")) {
                bg = getComputedStyle(el).backgroundColor;
                el = el.parentElement;
            }
            return [fg, bg];
        }""",
        selector,
    )
    first, second = sorted((_lum(colors[0]), _lum(colors[1])), reverse=True)
    return (first + 0.05) / (second + 0.05)
