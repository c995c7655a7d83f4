"""Fixtures for browser tests: the real app on a 127.0.0.1 port, driven by headless Chromium.

- ``live_server``: ``create_app`` on a fresh SQLite store at the newest schema, a policy
  (one harmless ``say_hello`` action), playbook dir and localhost inventory, served
  by werkzeug's threaded server on a free 127.0.0.1 port in a background thread; stopped
  at teardown.
- ``browser``: one Chromium per session (Debian's /usr/bin/chromium; skipped if missing).
- ``page``: a fresh context per test (1280x800). Console errors, page errors, CSP
  violations, failed requests and sub-resource errors are collected and fail the test at
  teardown; ``page_problems(page)`` returns them so far.
- ``screenshot(page, name, *shows)``: asserts the page shows each text, then saves a PNG
  in ``test-output/screenshots/<name>.png``.
- ``make_user(server, role, name=None)`` and ``login(page, server, name, password)``.
"""

from __future__ import annotations

import http.client
import itertools
import re
import shutil
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import (
    Browser,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Response,
    expect,
    sync_playwright,
)
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.serving import BaseWSGIServer, make_server

from engine.accounts.users import UserInfo, create_user
from engine.record.audit import AuditLog
from engine.record.recorder import Recorder
from engine.settings import Settings, load_settings
from tests.fixtures.ansible import load_inventory_once
from tests.fixtures.store import migrated_sqlite
from webui import create_app
from webui.dashboard import INVENTORY_KEY, InventoryCache

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "test-output" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
PASSWORD = "correct horse battery staple"
TEST_CONFIG = {"TESTING": True, "SECRET_KEY": "browser-test-secret-key-" + "x" * 32}
HOST = "127.0.0.1"
ACTION = "say_hello"
STOP_TIMEOUT = 10.0  # seconds

POLICY = f"""\
version: 1
detection:
  high_cpu: {{trigger: 80, clear: 50, window: 1s, sustain: 0s, step: 1s, stale_after: 3s}}
actions:
  {ACTION}:
    playbook: hello.yml
    description: Print a greeting; changes nothing.
    timeout: 1m
  restart_nginx:
    playbook: restart_nginx.yml
    description: Check the nginx config, restart nginx, and confirm it answers HTTP.
    timeout: 1m
trust: {{actions: {{{ACTION}: auto, restart_nginx: auto}}}}
remediation:
  ladder: [{ACTION}]
"""
PLAYBOOK = """\
- name: Say hello
  hosts: all
  gather_facts: false
  tasks:
    - name: Greet
      ansible.builtin.debug:
        msg: hello from the browser test
"""
INVENTORY = f"""\
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{sys.executable}"
"""
_numbers = itertools.count(1)


@dataclass
class LiveServer:
    """The running app: its URL, settings, store and a recorder writing to that store."""

    url: str
    app: Flask
    settings: Settings
    sessions: sessionmaker[Session]
    recorder: Recorder

    def status(self, path: str) -> int:
        """The status of a plain GET (no cookies, redirects not followed)."""
        port = int(self.url.rsplit(":", 1)[1])
        connection = http.client.HTTPConnection(HOST, port, timeout=10)
        try:
            connection.request("GET", path)
            return connection.getresponse().status
        finally:
            connection.close()

    def require(self, path: str) -> None:
        """Fail the test if the page at ``path`` is missing (404): a deleted page is a bug."""
        status = self.status(path)
        assert status != 404, f"{path} is missing (404)"


@pytest.fixture(scope="session")
def browser_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The policy, playbooks and inventory of every live server (none of them writes there)."""
    config = tmp_path_factory.mktemp("browser-config")
    (config / "playbooks").mkdir()
    (config / "policy.yaml").write_text(POLICY)
    (config / "playbooks" / "hello.yml").write_text(PLAYBOOK)
    shutil.copy(ROOT / "playbooks" / "restart_nginx.yml", config / "playbooks")
    (config / "inventory.yml").write_text(INVENTORY)
    return config


@pytest.fixture
def live_server(tmp_path: Path, browser_config: Path) -> Iterator[LiveServer]:
    """The real app in a background thread on a free 127.0.0.1 port, its own data."""
    config = browser_config
    data = tmp_path / "data"
    settings = load_settings(
        {
            "AUTOSRE_DATA_DIR": str(data),
            "AUTOSRE_DATABASE_URL": migrated_sqlite(data / "autosre.db"),
            "AUTOSRE_POLICY": str(config / "policy.yaml"),
            "AUTOSRE_PLAYBOOK_DIR": str(config / "playbooks"),
            "AUTOSRE_INVENTORY": str(config / "inventory.yml"),
        }
    )
    app = create_app(TEST_CONFIG, settings=settings)
    # The dashboard's hosts: the inventory parsed once per session, not once per test.
    app.extensions[INVENTORY_KEY] = InventoryCache(settings.inventory, loader=load_inventory_once)
    sessions: sessionmaker[Session] = app.extensions["autosre"]
    server: BaseWSGIServer = make_server(HOST, 0, app, threaded=True)
    thread = threading.Thread(
        target=server.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True
    )
    thread.start()
    try:
        yield LiveServer(
            url=f"http://{HOST}:{server.server_port}",
            app=app,
            settings=settings,
            sessions=sessions,
            recorder=Recorder(sessions, AuditLog(settings.audit_log)),
        )
    finally:
        stopper = threading.Thread(target=server.shutdown, daemon=True)
        stopper.start()
        stopper.join(STOP_TIMEOUT)
        server.server_close()
        thread.join(STOP_TIMEOUT)
        sessions.kw["bind"].dispose()
        assert not thread.is_alive(), "the test web server did not stop"


@pytest.fixture(scope="session")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: apt-get install chromium for browser tests")
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="session")
def browser(playwright: Playwright) -> Iterator[Browser]:
    """One headless Chromium for the whole session."""
    chromium = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield chromium
    chromium.close()


@dataclass
class Problems:
    """What went wrong in the browser while a test ran."""

    items: list[str] = field(default_factory=list)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.items.append(f"console error: {message.text} ({message.location})")

    def page_error(self, error: Exception) -> None:
        self.items.append(f"uncaught exception: {error}")

    def failed(self, request: Request) -> None:
        if request.failure == "net::ERR_ABORTED":
            return  # cancelled by the browser: the page navigated away while it loaded
        self.items.append(f"request failed: {request.method} {request.url}: {request.failure}")

    def response(self, response: Response) -> None:
        # A page the test navigates to may be an error page on purpose; its parts may not.
        if response.status >= 400 and not response.request.is_navigation_request():
            method = response.request.method
            self.items.append(f"HTTP {response.status} for {method} {response.url}")


# Reports CSP violations even where Chromium prints none to the console.
CSP_LISTENER = """
document.addEventListener("securitypolicyviolation", function (e) {
  console.error("CSP violation: " + e.violatedDirective + " blocked " + e.blockedURI);
});
"""


@contextmanager
def open_page(browser: Browser, server: LiveServer, **options: Any) -> Iterator[Page]:
    """A page in a fresh context (``options`` go to new_context); problems fail at the end."""
    context = browser.new_context(
        viewport={"width": 1280, "height": 800}, base_url=server.url, **options
    )
    context.set_default_timeout(10_000)
    context.set_default_navigation_timeout(10_000)
    context.add_init_script(CSP_LISTENER)
    tab = context.new_page()
    problems = Problems()
    tab.on("console", problems.console)
    tab.on("pageerror", problems.page_error)
    tab.on("requestfailed", problems.failed)
    tab.on("response", problems.response)
    _problems[id(tab)] = problems
    try:
        yield tab
    finally:
        context.close()
        del _problems[id(tab)]
    assert not problems.items, "problems in the browser:\n" + "\n".join(problems.items)


@pytest.fixture
def page(browser: Browser, live_server: LiveServer) -> Iterator[Page]:
    """A page in a fresh light-scheme context; browser-side problems fail the test."""
    with open_page(browser, live_server) as tab:
        yield tab


_problems: dict[int, Problems] = {}


def page_problems(tab: Page) -> list[str]:
    """The browser-side problems collected so far on an ``open_page`` page."""
    return list(_problems[id(tab)].items)


def screenshot(tab: Page, name: str, *shows: str | re.Pattern[str]) -> Path:
    """Check that the page shows each of ``shows``, then save a full-page PNG as
    test-output/screenshots/<name>.png. A picture alone proves nothing, so each one
    names what the page must show."""
    assert shows, f"screenshot {name!r}: name what the page must show"
    for text in shows:
        expect(tab.locator("body")).to_contain_text(text)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    tab.screenshot(path=str(path), full_page=True)
    return path


def make_user(
    server: LiveServer, role: str = "viewer", name: str | None = None, password: str = PASSWORD
) -> UserInfo:
    """A new account in the server's store."""
    return create_user(server.sessions, name or f"{role}{next(_numbers)}", password, role)


def login(tab: Page, name: str, password: str = PASSWORD) -> None:
    """Sign in through the real login form and wait for the page that follows."""
    tab.goto("/login")
    tab.locator("input[name=name]").fill(name)
    tab.locator("input[name=password]").fill(password)
    with tab.expect_navigation():
        tab.locator("form button[type=submit]", has_text="Sign in").click()


def signed_in(tab: Page, server: LiveServer, role: str, name: str | None = None) -> UserInfo:
    """A new user of the role, signed in on the page."""
    user = make_user(server, role, name)
    login(tab, user.name)
    assert "/login" not in tab.url, f"sign-in as {user.name} failed: {tab.url}"
    return user
