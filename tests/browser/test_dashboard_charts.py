"""The dashboard's charts and host search, and the run form's host picker, in Chromium.

A fleet of 60 hosts in two groups (every one ``ansible_connection: local``): this module
gives the live server an inventory of its own by overriding ``browser_config``.
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from engine.incident.life import IncidentStatus
from engine.record.live import LivePublisher
from engine.types import HostState, HostStatus, Sample
from tests.browser.conftest import (
    ACTION,
    PLAYBOOK,
    POLICY,
    ROOT,
    LiveServer,
    open_page,
    page_problems,
    screenshot,
    signed_in,
)

pytestmark = pytest.mark.browser

WEB = [f"web-{n:03d}" for n in range(1, 41)]
DB = [f"db-{n:03d}" for n in range(1, 21)]
PHONE = {"width": 390, "height": 844}
WAIT_MS = 8_000  # a poll every 5 s and a debounce: an answer within this, or a failure


def inventory_yaml() -> str:
    lines = ["all:", "  vars:", "    ansible_connection: local", "  children:"]
    for group, names in (("web", WEB), ("db", DB)):
        lines += [f"    {group}:", "      hosts:"] + [f"        {name}:" for name in names]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def browser_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """As the conftest's, with a fleet of 60 hosts in groups web and db."""
    config = tmp_path_factory.mktemp("fleet-config")
    (config / "playbooks").mkdir()
    (config / "policy.yaml").write_text(POLICY)
    (config / "playbooks" / "hello.yml").write_text(PLAYBOOK)
    shutil.copy(ROOT / "playbooks" / "restart_nginx.yml", config / "playbooks")
    (config / "inventory.yml").write_text(inventory_yaml())
    return config


@pytest.fixture
def fleet(live_server: LiveServer) -> Iterator[LiveServer]:
    """Two hot hosts with a CPU history, a few normal ones, and incidents over two weeks."""
    now = time.time()
    hot = {"web-007", "db-013"}
    states = {
        h: HostState(
            h, HostStatus.HIGH_CPU if h in hot else HostStatus.NORMAL, 40.0, now - 60, "r", now
        )
        for h in [*WEB[:10], *DB[10:15]]
    }
    windows = {h: tuple(Sample(h, now - 30 + n, 20.0 + 7 * n) for n in range(11)) for h in states}
    LivePublisher(live_server.sessions, every=0.0, clock=lambda: now).publish(states, windows, 0.1)
    recorder = live_server.recorder
    for days in (0.1, 0.5, 1.5, 3.0, 9.0):
        at = now - days * 86_400
        i = recorder.incidents.open("web-001", "high_cpu", 95.0, "hot", at=at, since=at)
        recorder.incidents.set_status(
            i, IncidentStatus.RESOLVED, at + 120, "resolved", "ok", value_after=30.0, close=True
        )
    yield live_server


def no_sideways_scroll(tab: Page) -> None:
    wide = tab.evaluate("document.documentElement.scrollWidth")
    assert wide <= tab.evaluate("window.innerWidth"), f"the page is {wide} px wide"


def table_hosts(tab: Page) -> list[str]:
    return [
        str(h)
        for h in tab.locator("#host-table tr[data-host]").evaluate_all(
            "rows => rows.map(r => decodeURIComponent(r.dataset.host))"
        )
    ]


def test_the_dashboard_fits_a_phone_with_its_charts(browser: Browser, fleet: LiveServer) -> None:
    with open_page(browser, fleet) as tab:
        tab.set_viewport_size(PHONE)
        signed_in(tab, fleet, "viewer")
        tab.goto("/")
        expect(tab.locator("svg.bars")).to_be_visible()
        expect(tab.locator("svg.sparkline").first).to_be_visible()
        no_sideways_scroll(tab)
        # The chart scales down to the screen rather than pushing the page sideways.
        box = tab.locator("svg.bars").bounding_box()
        assert box is not None and box["x"] + box["width"] <= PHONE["width"]
        tab.goto("/?window=30d")
        expect(tab.locator("svg.bars g.bar")).to_have_count(30)
        no_sideways_scroll(tab)
        screenshot(tab, "dashboard-phone-30d", "Success rate, last 30 d", "Search hosts")
        assert not page_problems(tab)


def test_typing_in_the_host_search_narrows_the_table(page: Page, fleet: LiveServer) -> None:
    signed_in(page, fleet, "viewer")
    page.goto("/")
    assert len(table_hosts(page)) == 60
    # The hot hosts first, each with its trigger line and scale.
    assert table_hosts(page)[:2] == ["db-013", "web-007"]
    expect(page.locator("tr[data-host='web-007'] line.spark-threshold")).to_have_count(1)

    page.locator("input[name=q]").press_sequentially("db-01", delay=30)
    expect(page.locator("#host-table tr[data-host]")).to_have_count(10, timeout=WAIT_MS)
    narrowed = table_hosts(page)
    assert narrowed[0] == "db-013"  # still problems first
    assert sorted(narrowed) == [f"db-{n:03d}" for n in range(10, 20)]
    assert "q=db-01" in page.url  # a reload or a shared link shows the same hosts
    # The table's polling keeps the filter: the next refresh asks for the filtered hosts.
    with page.expect_response(lambda r: "/dashboard/hosts?q=db-01" in r.url, timeout=WAIT_MS):
        pass
    expect(page.locator("#host-table tr[data-host]")).to_have_count(10)
    # "Clear" shows at once, and the summary's window links (redrawn by its own polling)
    # keep the filter: choosing another window shows the same hosts.
    expect(page.locator("a[data-filter-clear]")).to_be_visible()
    with page.expect_response(lambda r: "/dashboard/summary?q=db-01" in r.url, timeout=WAIT_MS):
        pass
    page.locator("a[data-window='30d']").click()
    expect(page.locator("a[data-window='30d']")).to_have_attribute("aria-current", "true")
    assert "q=db-01" in page.url and "window=30d" in page.url
    expect(page.locator("#host-table tr[data-host]")).to_have_count(10)
    page.locator("a[data-filter-clear]").click()
    expect(page.locator("#host-table tr[data-host]")).to_have_count(60)
    assert "q=" not in page.url and "window=30d" in page.url
    expect(page.locator("a[data-filter-clear]")).to_be_hidden()
    page.locator("input[name=q]").press_sequentially("db-01", delay=30)
    expect(page.locator("#host-table tr[data-host]")).to_have_count(10, timeout=WAIT_MS)

    page.locator("select[name=group]").select_option("web")
    expect(page.locator("#host-table")).to_contain_text("No host matches", timeout=WAIT_MS)
    page.locator("input[name=q]").fill("")
    page.locator("select[name=state]").select_option("high_cpu")
    expect(page.locator("#host-table tr[data-host]")).to_have_count(1, timeout=WAIT_MS)
    assert table_hosts(page) == ["web-007"]
    screenshot(page, "dashboard-host-filter", "1 of 60 match")
    # What is typed is text, never markup or a pattern.
    page.locator("select[name=state]").select_option("")
    page.locator("select[name=group]").select_option("")
    page.locator("input[name=q]").fill("<img src=x>%")
    expect(page.locator("#host-table")).to_contain_text("No host matches", timeout=WAIT_MS)
    assert page.locator("#host-table img").count() == 0


def test_the_pickers_search_selects_the_matching_hosts(page: Page, fleet: LiveServer) -> None:
    signed_in(page, fleet, "operator")
    page.goto(f"/playbooks/{ACTION}/run")
    boxes = page.locator("input[name=hosts]")
    expect(boxes).to_have_count(60)
    search = page.locator("[data-picker-search]")
    search.fill("db-00")
    search.press("Enter")  # filters; must not submit the run form
    assert page.url.endswith(f"/playbooks/{ACTION}/run")
    expect(page.locator("label[data-host-name]:visible")).to_have_count(9)
    page.get_by_role("button", name="Select all matching").click()
    expect(page.locator("[data-picker-count]")).to_have_text("9 chosen of 60")
    search.fill("")
    checked = page.locator("input[name=hosts]:checked")
    expect(checked).to_have_count(9)
    assert checked.evaluate_all("bs => bs.map(b => b.value)") == [f"db-00{n}" for n in range(1, 10)]

    # By group and state: the hot web host only, added to the nine.
    page.locator("[data-picker-group]").select_option("web")
    page.locator("[data-picker-state]").select_option("HIGH_CPU")
    expect(page.locator("label[data-host-name]:visible")).to_have_count(1)
    page.get_by_role("button", name="Select all matching").click()
    expect(page.locator("[data-picker-count]")).to_have_text("10 chosen of 60")

    page.locator("input[name=reason]").fill("picker test")
    with page.expect_navigation():
        page.get_by_role("button", name="Review…").click()
    body = page.locator("body")
    for host in ("db-001", "db-009", "web-007"):
        expect(body).to_contain_text(host)
    assert "web-001" not in (page.text_content("main") or "")
    assert re.search(r"db-010|web-002", page.text_content("main") or "") is None
