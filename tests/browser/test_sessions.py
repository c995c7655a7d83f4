"""Sessions in a real browser: a cookie saved before signing out opens nothing afterwards,
and "sign out everywhere" ends the user's other browsers too."""

from __future__ import annotations

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import LiveServer, login, make_user, open_page, screenshot

pytestmark = pytest.mark.browser

COOKIE = "autosre_session"


def _on_login_page(tab: Page) -> None:
    assert "/login" in tab.url, tab.url
    expect(tab.get_by_role("heading", name="Sign in")).to_be_visible()


def test_cookies_saved_before_sign_out_are_refused_after(
    browser: Browser, live_server: LiveServer
) -> None:
    user = make_user(live_server, "admin")
    with open_page(browser, live_server) as tab:
        login(tab, user.name)
        assert "/login" not in tab.url
        saved = tab.context.cookies()
        assert [c["name"] for c in saved] == [COOKIE]
        # While the session lives, the saved cookies open the admin's pages elsewhere.
        with open_page(browser, live_server) as copy:
            copy.context.add_cookies(saved)  # type: ignore[arg-type]
            copy.goto("/users")
            expect(copy.get_by_role("heading", name="Users")).to_be_visible()
        with tab.expect_navigation():
            tab.get_by_role("button", name="Sign out", exact=True).click()
        _on_login_page(tab)
    with open_page(browser, live_server) as thief:
        thief.context.add_cookies(saved)  # type: ignore[arg-type]
        thief.goto("/users")
        _on_login_page(thief)
        assert thief.url.endswith("/login?next=/users")
        expect(thief.locator("header .user-name")).to_have_count(0)


def test_sign_out_everywhere_from_the_account_page(
    browser: Browser, live_server: LiveServer
) -> None:
    user = make_user(live_server, "viewer")
    other = make_user(live_server, "viewer")
    with (
        open_page(browser, live_server) as laptop,
        open_page(browser, live_server) as phone,
        open_page(browser, live_server) as someone_else,
    ):
        for tab, name in ((laptop, user.name), (phone, user.name), (someone_else, other.name)):
            login(tab, name)
            assert "/login" not in tab.url
        with laptop.expect_navigation():
            laptop.locator("header .user-name").click()
        expect(laptop.get_by_role("heading", name="Your account")).to_be_visible()
        expect(laptop.locator("table.sessions tbody tr")).to_have_count(2)
        expect(laptop.get_by_text("this browser")).to_be_visible()
        screenshot(laptop, "account", "Your account", "this browser")
        with laptop.expect_navigation():
            laptop.get_by_role("button", name="Sign out everywhere").click()
        _on_login_page(laptop)
        expect(laptop.get_by_text("Signed out everywhere: 2 sessions ended.")).to_be_visible()
        phone.goto("/")
        _on_login_page(phone)
        someone_else.goto("/")
        assert "/login" not in someone_else.url
