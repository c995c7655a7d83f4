"""The dashboard at "/" and its polled fragments, on a real store.

Host states come from the LivePublisher and incidents from the Recorder.
The inventory is an InventoryCache with a loader of the test's own (one test runs the real
ansible-inventory on a file it writes).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import InventoryError
from engine.incident.life import IncidentStatus
from engine.inventory import Inventory, InventoryHost, load_inventory
from engine.record.audit import AuditLog
from engine.record.live import LivePublisher
from engine.record.recorder import Recorder
from engine.types import HostState, HostStatus, Proposal, RunRequest, Sample, Verdict, VerdictKind
from webui.dashboard import INVENTORY_KEY, InventoryCache

BOTH_BACKENDS = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
FRAGMENTS = ("/dashboard/hosts", "/dashboard/summary")


def fixed_inventory(*names: str) -> InventoryCache:
    hosts = {name: InventoryHost(name, name) for name in names}
    return InventoryCache(Path("inventory.yml"), loader=lambda path: Inventory(path, hosts))


@pytest.fixture
def inventory(app: Flask) -> list[str]:
    """The inventory's host names: the test may change the list before the first request."""
    names: list[str] = ["web1", "web2", "web3", "web4", "web5"]

    def load(path: Path) -> Inventory:
        return Inventory(path, {n: InventoryHost(n, n) for n in names})

    app.extensions[INVENTORY_KEY] = InventoryCache(Path("inventory.yml"), loader=load)
    return names


@pytest.fixture
def recorder(sessions: sessionmaker[Session], tmp_path: Path) -> Recorder:
    return Recorder(sessions, AuditLog(tmp_path / "audit" / "audit.jsonl"))


def publish(sessions: sessionmaker[Session], statuses: dict[str, HostStatus]) -> None:
    now = time.time()
    states = {h: HostState(h, s, 50.0, now - 60, "reason", now) for h, s in statuses.items()}
    # A ramp from -20 to 130: the sparkline clamps it to 0..100.
    windows = {
        h: tuple(Sample(h, now - 10 + n, -20.0 + 15 * n) for n in range(11)) for h in statuses
    }
    LivePublisher(sessions, every=0.0, clock=lambda: now).publish(states, windows, 0.1)


def activity(recorder: Recorder) -> None:
    """web2: awaiting approval; web3: remediating; web4: a resolved incident."""
    now = time.time()
    proposal = Proposal("restart_nginx", 0.9, "busy")
    execute = Verdict(VerdictKind.EXECUTE, "restart_nginx", "ok", "ladder")
    wait = Verdict(VerdictKind.AWAIT_APPROVAL, "restart_nginx", "human", "approval")
    i2 = recorder.incidents.open("web2", "high_cpu", 95.0, "hot web2", at=now - 60, since=now)
    d2 = recorder.decisions.record(i2, "web2", proposal, wait, now - 50)
    recorder.approvals.request(
        i2, d2, "web2", "restart_nginx", "busy", at=now - 50, expires_at=now + 600
    )
    i3 = recorder.incidents.open("web3", "high_cpu", 96.0, "hot web3", at=now - 40, since=now)
    d3 = recorder.decisions.record(i3, "web3", proposal, execute, now - 30)
    recorder.runs.begin(
        RunRequest("restart_nginx", "/p/restart_nginx.yml", ("web3",)),
        ident="r3",
        artifact_dir="/tmp/r3",
        trigger="engine",
        requested_by="engine",
        at=now - 30,
        decisions=[(d3, i3)],
    )
    i4 = recorder.incidents.open("web4", "high_cpu", 90.0, "hot web4", at=now - 900, since=now)
    recorder.incidents.set_status(
        i4, IncidentStatus.RESOLVED, now - 300, "resolved", "ok", value_after=30.0, close=True
    )


def host_order(html: str) -> list[str]:
    """The hosts of the host table, in order."""
    if '<table class="hosts">' not in html:
        return []
    table = html.split('<table class="hosts">', 1)[1].split("</table>", 1)[0]
    return re.findall(r'<td><a href="/incidents\?host=([^"]+)">', table)


@BOTH_BACKENDS
def test_viewer_sees_the_dashboard_and_its_fragments(
    viewer_client: FlaskClient,
    inventory: list[str],
    sessions: sessionmaker[Session],
    recorder: Recorder,
) -> None:
    publish(sessions, {"web1": HostStatus.NORMAL, "web5": HostStatus.HIGH_CPU})
    activity(recorder)

    page = viewer_client.get("/")
    assert page.status_code == 200
    text = page.text
    assert 'data-poll-url="/dashboard/summary" data-poll-every="5"' in text
    assert 'data-poll-url="/dashboard/hosts?page=1" data-poll-every="5"' in text
    assert 'href="/static/pages.css"' in text
    # High CPU first, then hosts with an approval or a run in flight, then no data, then normal.
    assert host_order(text) == ["web5", "web2", "web3", "web4", "web1"]
    assert "awaiting approval" in text
    assert "remediating" in text
    assert "no data yet" in text
    assert '<svg class="sparkline"' in text
    points = re.findall(r'<polyline points="([^"]+)"', text)
    assert len(points) == 2  # the published hosts
    ys = [float(p.split(",")[1]) for p in points[0].split()]
    assert min(ys) == 0.0  # 100% and above at the top
    assert max(ys) == 24.0  # 0% and below at the bottom
    assert '<svg class="bars"' in text
    assert "100%" in text  # success rate: web4 resolved, nothing else closed
    for url in FRAGMENTS:
        fragment = viewer_client.get(url)
        assert fragment.status_code == 200, url
        assert "<html" not in fragment.text, url
        assert 'class="topbar"' not in fragment.text, url
    assert host_order(viewer_client.get("/dashboard/hosts").text) == host_order(text)
    summary = viewer_client.get("/dashboard/summary").text
    assert 'href="/incidents/' in summary  # the open incidents
    assert "restart_nginx on web2 awaits approval" in summary
    assert "hot web4" not in summary  # resolved: not open


@BOTH_BACKENDS
def test_summary_numbers(
    viewer_client: FlaskClient, inventory: list[str], recorder: Recorder
) -> None:
    now = time.time()
    for host, after, seconds in (("web1", 30.0, 60.0), ("web2", 50.0, 300.0)):
        i = recorder.incidents.open(host, "high_cpu", 90.0, "hot", at=now - 600, since=now)
        recorder.incidents.set_status(
            i, IncidentStatus.RESOLVED, now - 600 + seconds, "resolved", "ok", value_after=after,
            close=True,
        )  # fmt: skip
    i = recorder.incidents.open("web3", "high_cpu", 90.0, "hot", at=now - 600, since=now)
    recorder.incidents.set_status(
        i, IncidentStatus.ESCALATED, now - 100, "escalated", "gave up", close=True
    )
    recorder.incidents.open("web4", "high_cpu", 90.0, "hot", at=now - 50, since=now)
    text = viewer_client.get("/dashboard/summary").text
    assert "67%" in text  # 2 of 3 closed
    assert "2 of 3 closed" in text
    assert "50.0 pts" in text  # (60 + 40) / 2
    assert "3.0 min" in text  # (60 s + 300 s) / 2
    assert re.search(r'class="stat-value">1</span>', text)  # one open
    assert "<title>" in text  # a tooltip per day's bar
    assert re.search(r"<title>\d{4}-\d\d-\d\d: 4 incidents</title>", text)


def test_signed_out_goes_to_login(client: FlaskClient, inventory: list[str]) -> None:
    for url in ("/", *FRAGMENTS):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"].startswith("/login?next="), url


def test_bad_page_is_a_400(viewer_client: FlaskClient, inventory: list[str]) -> None:
    for url in ("/?page=abc", "/dashboard/hosts?page=0", "/dashboard/hosts?page=-2"):
        response = viewer_client.get(url)
        assert response.status_code == 400, url


def test_a_thousand_hosts_are_paged_problems_first(
    viewer_client: FlaskClient, inventory: list[str], sessions: sessionmaker[Session]
) -> None:
    inventory[:] = [f"host{n:04d}" for n in range(1050)]
    publish(sessions, {"host1049": HostStatus.HIGH_CPU, "host0001": HostStatus.NORMAL})
    first = viewer_client.get("/dashboard/hosts").text
    rows = host_order(first)
    assert len(rows) == 100
    assert rows[0] == "host1049"
    assert "page 1 of 11" in first
    assert 'href="/?page=2" rel="next"' in first
    last = viewer_client.get("/dashboard/hosts?page=11").text
    assert len(host_order(last)) == 50
    assert host_order(last)[-1] == "host0001"  # the one normal host comes last
    assert 'rel="next"' not in last
    page = viewer_client.get("/?page=99")  # past the end: the last page
    assert 'data-poll-url="/dashboard/hosts?page=11"' in page.text


def test_host_names_are_escaped(
    app: Flask, viewer_client: FlaskClient, sessions: sessionmaker[Session], recorder: Recorder
) -> None:
    evil = f"web{IMG}{SCRIPT}"
    app.extensions[INVENTORY_KEY] = fixed_inventory(evil, "web1")
    publish(sessions, {evil: HostStatus.HIGH_CPU})
    recorder.incidents.open(evil, "high_cpu", 99.0, f"hot {SCRIPT}", at=time.time(), since=0.0)
    for url in ("/", *FRAGMENTS):
        text = viewer_client.get(url).text
        assert SCRIPT not in text, url
        assert "<img" not in text, url
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text, url
        assert not re.search(r"<[^>]*\son[a-z]+\s*=", text), url
        assert " style=" not in text, url


def test_unreadable_inventory_falls_back_to_published_hosts(
    app: Flask, viewer_client: FlaskClient, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    app.extensions[INVENTORY_KEY] = InventoryCache(tmp_path / "missing.yml")
    publish(sessions, {"db1": HostStatus.NORMAL, "db2": HostStatus.UNKNOWN})
    text = viewer_client.get("/dashboard/hosts").text
    assert host_order(text) == ["db2", "db1"]
    assert "inventory could not be read" in text


def test_real_inventory_is_loaded_once(
    app: Flask, viewer_client: FlaskClient, tmp_path: Path
) -> None:
    path = tmp_path / "hosts.ini"
    path.write_text("[web]\nweb-a ansible_connection=local\nweb-b ansible_connection=local\n")
    calls: list[Path] = []

    def load(where: Path) -> Inventory:
        calls.append(where)
        return load_inventory(where)

    app.extensions[INVENTORY_KEY] = InventoryCache(path, loader=load)
    for _ in range(3):
        assert host_order(viewer_client.get("/dashboard/hosts").text) == ["web-a", "web-b"]
    assert calls == [path]


def test_inventory_cache_retries_after_a_failure() -> None:
    now = [0.0]
    results: list[Inventory | InventoryError] = [
        InventoryError("broken"),
        Inventory(Path("x"), {"a": InventoryHost("a", "a")}),
    ]

    def load(path: Path) -> Inventory:
        result = results.pop(0)
        if isinstance(result, InventoryError):
            raise result
        return result

    cache = InventoryCache(Path("x"), ttl=300.0, retry=60.0, loader=load, clock=lambda: now[0])
    assert cache.hosts() is None
    now[0] = 30.0
    assert cache.hosts() is None  # not retried yet
    now[0] = 61.0
    assert cache.hosts() == ("a",)
    now[0] = 300.0
    assert cache.hosts() == ("a",)  # cached
