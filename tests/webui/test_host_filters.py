"""The dashboard's host search and filters at fleet size, on a real store.

The inventory is an InventoryCache with a loader of the test's own (1,000 hosts in groups);
host states come from the LivePublisher, as the engine writes them.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from urllib.parse import quote, unquote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.inventory import Inventory, InventoryHost
from engine.read.hosts import read_host_page
from engine.record.live import LivePublisher
from engine.types import HostState, HostStatus
from webui.dashboard import INVENTORY_KEY, InventoryCache

FLEET = 1000


def groups_of(n: int) -> tuple[str, ...]:
    return ("web" if n % 2 == 0 else "db", "rack-a" if n < 100 else "rack-b")


def use_inventory(app: Flask, hosts: dict[str, tuple[str, ...]]) -> None:
    found = {name: InventoryHost(name, name, groups=groups) for name, groups in hosts.items()}
    app.extensions[INVENTORY_KEY] = InventoryCache(
        Path("inventory.yml"), loader=lambda path: Inventory(path, found)
    )


@pytest.fixture
def fleet(app: Flask) -> list[str]:
    names = [f"host{n:04d}" for n in range(FLEET)]
    use_inventory(app, {name: groups_of(n) for n, name in enumerate(names)})
    return names


def publish(sessions: sessionmaker[Session], statuses: dict[str, HostStatus]) -> None:
    now = time.time()
    states = {h: HostState(h, s, 50.0, now - 60, "reason", now) for h, s in statuses.items()}
    LivePublisher(sessions, every=0.0, clock=lambda: now).publish(states, {}, 0.1)


def shown(html: str) -> list[str]:
    """The host table's hosts, in order (data-host: each name URL-encoded)."""
    return [unquote(n) for n in re.findall(r'<tr class="[^"]*" data-host="([^"]+)">', html)]


def walk(client: FlaskClient, query: str) -> list[list[str]]:
    """Every page of the filtered table, following its Next links (bounded)."""
    pages = []
    url: str | None = f"/dashboard/hosts?{query}"
    while url and len(pages) < 20:
        text = client.get(url).text
        pages.append(shown(text))
        found = re.search(r'href="/\?([^"]+)" rel="next"', text)
        url = f"/dashboard/hosts?{found.group(1).replace('&amp;', '&')}" if found else None
    return pages


def test_filters_by_search_state_and_group_page_through_a_fleet(
    viewer_client: FlaskClient, fleet: list[str], sessions: sessionmaker[Session]
) -> None:
    hot = {"host0998": HostStatus.HIGH_CPU, "host0101": HostStatus.HIGH_CPU}
    publish(sessions, {**hot, "host0002": HostStatus.NORMAL, "host0004": HostStatus.NORMAL})

    page = viewer_client.get("/dashboard/hosts?q=HOST00").text  # case-insensitive
    rows = shown(page)
    assert sorted(rows) == [f"host{n:04d}" for n in range(100)]
    assert rows[-2:] == ["host0002", "host0004"]  # no data first, then normal; by name in each
    assert "100 of 1,000 match" in page
    assert 'rel="next"' not in page

    by_state = walk(viewer_client, "state=high_cpu")
    assert by_state == [["host0101", "host0998"]]
    normal = walk(viewer_client, "state=normal")
    assert normal == [["host0002", "host0004"]]
    unknown = walk(viewer_client, "state=UNKNOWN")
    assert sum(len(p) for p in unknown) == FLEET - 4

    # A group of 500: five pages of 100, problems first, each page keeping the filter.
    pages = walk(viewer_client, "group=web")
    assert [len(p) for p in pages] == [100] * 5
    listed = [h for p in pages for h in p]
    assert listed[0] == "host0998"  # even, high CPU: first
    assert sorted(listed) == [h for n, h in enumerate(fleet) if n % 2 == 0]
    assert len(set(listed)) == 500

    # All three at once.
    both = viewer_client.get("/dashboard/hosts?q=01&group=db&state=high_cpu").text
    assert shown(both) == ["host0101"]
    none = viewer_client.get("/dashboard/hosts?q=zzz").text
    assert shown(none) == [] and "No host matches these filters." in none


def test_the_page_keeps_the_filters_for_polling_and_paging(
    viewer_client: FlaskClient, fleet: list[str]
) -> None:
    page = viewer_client.get("/?group=web&q=host&page=2").text
    assert 'data-poll-url="/dashboard/hosts?page=2&amp;q=host&amp;group=web"' in page
    assert 'href="/?page=3&amp;q=host&amp;group=web" rel="next"' in page
    assert 'href="/?page=1&amp;q=host&amp;group=web" rel="prev"' in page
    assert '<input type="search" name="q" value="host"' in page
    assert '<option value="web" selected>web</option>' in page
    # The groups on offer are the inventory's, without Ansible's implicit ones.
    options = re.findall(r'<option value="([^"]*)"', page.split('name="group"', 1)[1])
    assert options[: options.index("web") + 1] == ["", "db", "rack-a", "rack-b", "web"]


def test_the_window_links_and_clear_keep_what_they_should(
    viewer_client: FlaskClient, fleet: list[str]
) -> None:
    # The summary's window links keep the host filters, and so do its polling and the
    # fragment it polls; "Clear" drops the filters and keeps the window.
    page = viewer_client.get("/?group=web&q=host&window=30d").text
    assert 'href="/?window=24h&amp;q=host&amp;group=web" data-window="24h"' in page
    assert 'data-poll-url="/dashboard/summary?window=30d&amp;q=host&amp;group=web"' in page
    clear = re.search(r"<a [^>]*data-filter-clear[^>]*>", page)
    assert clear and 'href="/?window=30d"' in clear[0] and "hidden" not in clear[0]
    fragment = viewer_client.get("/dashboard/summary?window=30d&q=host&group=web").text
    assert 'href="/?window=24h&amp;q=host&amp;group=web" data-window="24h"' in fragment
    # Typed text travels as a query parameter, never as markup.
    hostile = viewer_client.get('/dashboard/summary?q="><img src=x onerror=alert(1)>').text
    assert "<img src=x" not in hostile and "q=%22%3E%3Cimg" in hostile
    # Unfiltered, "Clear" is there for the script to show, hidden until then.
    page = viewer_client.get("/").text
    assert 'href="/?window=30d" data-window="30d"' in page
    clear = re.search(r"<a [^>]*data-filter-clear[^>]*>", page)
    assert clear and clear[0].endswith(" hidden>")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("state=burning", "state must be one of"),
        ("group=nope", "no such group"),
        ("q=" + "x" * 101, "q must be one line of at most 100"),
        ("q=a%0Ab", "q must be one line"),
        ("q=a%00b", "q must be one line"),
        ("group=web%1B%5B31m", "group must be one line"),
    ],
)
def test_a_bad_filter_is_a_400(
    viewer_client: FlaskClient, fleet: list[str], query: str, message: str
) -> None:
    for url in (f"/?{query}", f"/dashboard/hosts?{query}", f"/dashboard/summary?{query}"):
        response = viewer_client.get(url)
        assert response.status_code == 400, url
        assert message in response.text, url


def test_search_text_is_matched_literally_and_shown_escaped(
    app: Flask, viewer_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    evil = "<script>alert(1)</script>"
    names = ["web%1", "web_2", "web12", "webX2", "{{7*7}}", f"x{evil}"]
    use_inventory(app, dict.fromkeys(names, ("web",)))
    for text, wanted in (
        ("%", ["web%1"]),
        ("_", ["web_2"]),
        ("b_2", ["web_2"]),  # not "webX2": "_" is no wildcard
        ("{{7*7}}", ["{{7*7}}"]),
        ("<script>", [f"x{evil}"]),
    ):
        page = viewer_client.get(f"/?q={quote(text)}").text
        assert shown(page) == wanted, text
        assert evil not in page and "<script>alert" not in page
        assert ">49<" not in page and 'value="49"' not in page  # never evaluated
    page = viewer_client.get(f"/?q={quote(evil)}").text
    assert 'value="&lt;script&gt;alert(1)&lt;/script&gt;"' in page
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", page)

    # The store's reader (the published hosts, for the API) escapes LIKE's wildcards too.
    publish(sessions, dict.fromkeys(names, HostStatus.NORMAL))
    assert [s.host for s in read_host_page(sessions, name_contains="%").items] == ["web%1"]
    assert [s.host for s in read_host_page(sessions, name_contains="_").items] == ["web_2"]
    found = read_host_page(sessions, name_contains="WEB", limit=2)
    assert found.total == 4 and len(found.items) == 2 and found.next_after


def test_without_an_inventory_the_published_hosts_are_filtered(
    app: Flask, viewer_client: FlaskClient, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    app.extensions[INVENTORY_KEY] = InventoryCache(tmp_path / "missing.yml")
    publish(
        sessions, {"db1": HostStatus.NORMAL, "db2": HostStatus.HIGH_CPU, "web1": HostStatus.NORMAL}
    )
    assert shown(viewer_client.get("/dashboard/hosts?q=db").text) == ["db2", "db1"]
    assert shown(viewer_client.get("/dashboard/hosts?state=normal").text) == ["db1", "web1"]
    # Groups are unknown without an inventory: a group matches nothing, it is not an error.
    response = viewer_client.get("/dashboard/hosts?group=web")
    assert response.status_code == 200 and shown(response.text) == []


def test_hosts_of_one_rank_sort_by_name(
    app: Flask, viewer_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    names = ["b", "a", "d", "c"]
    use_inventory(app, dict.fromkeys(names, ()))
    publish(sessions, {"d": HostStatus.HIGH_CPU, "b": HostStatus.MEMORY_PRESSURE})
    for _ in range(3):  # the same order on every refresh
        assert shown(viewer_client.get("/dashboard/hosts").text) == ["b", "d", "a", "c"]
