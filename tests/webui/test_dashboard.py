"""The dashboard at "/" and its polled fragments, on a real store.

Host states come from the LivePublisher and incidents from the Recorder.
The inventory is an InventoryCache with a loader of the test's own (one test runs the real
ansible-inventory on a file it writes).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import unquote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import InventoryError
from engine.incident.life import IncidentStatus
from engine.inventory import Inventory, InventoryHost, load_inventory
from engine.read.fleet_trend import FleetTrend, WindowRecord, fleet_trend
from engine.record.audit import AuditLog
from engine.record.live import LivePublisher
from engine.record.recorder import Recorder
from engine.store.models import Incident as IncidentRow
from engine.types import HostState, HostStatus, Proposal, RunRequest, Sample, Verdict, VerdictKind
from webui.dashboard import INVENTORY_KEY, InventoryCache, trend_words

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
    # data-host: the name URL-encoded (an attribute no markup can break out of)
    return [unquote(name) for name in re.findall(r'<tr class="[^"]*" data-host="([^"]+)">', table)]


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
    # Opened ten minutes ago: just after midnight UTC, that is two days' bars.
    per_day = re.findall(r"<title>\d{4}-\d\d-\d\d UTC: (\d+) incidents? opened</title>", text)
    assert sum(map(int, per_day)) == 4 and len([n for n in per_day if n != "0"]) <= 2


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


def add_incident(
    s: Session, opened: datetime, status: str, seconds: float | None = None, **extra: object
) -> None:
    """An incident opened at ``opened``, closed ``seconds`` later (None: not closed)."""
    closed = None if seconds is None else opened + timedelta(seconds=seconds)
    s.add(
        IncidentRow(
            host="web1",
            kind="high_cpu",
            status=status,
            attempts=0,
            opened_at=opened,
            updated_at=closed or opened,
            closed_at=closed,
            cpu_before=95.0,
            cpu_after=None if seconds is None else 35.0,
            summary="hot",
            **extra,
        )
    )


def two_weeks(sessions: sessionmaker[Session], now: datetime) -> None:
    """This week: 3 resolved (60, 90, 180 s) and 1 escalated: 75 %, MTTR 110 s. The week
    before: 1 resolved (600 s) and 1 failed: 50 %, MTTR 10 min. One older, one still open."""
    day = timedelta(days=1)
    with sessions.begin() as s:
        for seconds in (60.0, 90.0, 180.0):
            add_incident(s, now - day - timedelta(hours=1), "resolved", seconds)
        add_incident(s, now - 3 * day, "escalated", 30.0)
        add_incident(s, now - 8 * day, "resolved", 600.0)
        add_incident(s, now - 9 * day, "failed", 60.0)
        add_incident(s, now - 20 * day, "resolved", 60.0)  # in 30 d only
        add_incident(s, now - timedelta(hours=2), "open")


@BOTH_BACKENDS
def test_the_window_and_its_trend_against_the_previous_one(
    sessions: sessionmaker[Session], viewer_client: FlaskClient, inventory: list[str]
) -> None:
    now = datetime.now(tz=UTC)
    two_weeks(sessions, now)
    week = fleet_trend(sessions, now=now, window="7d")
    assert (week.current.closed, week.current.resolved) == (4, 3)
    assert week.current.success_rate == pytest.approx(0.75)
    assert week.current.mttr_seconds == pytest.approx(110.0, abs=0.01)
    assert (week.previous.closed, week.previous.resolved) == (2, 1)
    assert week.rate_change_points == pytest.approx(25.0)
    assert week.mttr_change_seconds == pytest.approx(-490.0, abs=0.01)
    assert len(week.buckets) == 7 and sum(n for _, n in week.buckets) == 5
    assert week.buckets[-1][0] == now.date().isoformat()

    day = fleet_trend(sessions, now=now, window="24h")
    assert day.hourly and len(day.buckets) == 24
    assert sum(n for _, n in day.buckets) == 1  # the open one, 2 h ago
    assert (day.current.closed, day.previous.closed) == (0, 3)
    month = fleet_trend(sessions, now=now, window="30d")
    assert (month.current.closed, month.previous.closed) == (7, 0)
    assert month.rate_change_points is None  # nothing closed before: no trend, not "+75"

    text = viewer_client.get("/dashboard/summary").text  # 7 d by default
    success = text.split('id="stat-success"', 1)[1].split("</div>", 1)[0]
    assert "75%" in success and "3 of 4 closed" in success
    assert "▲ 25 points vs previous 7 d" in success and "trend-good" in success
    mttr = text.split('id="stat-mttr"', 1)[1].split("</div>", 1)[0]
    assert "110 s" in mttr
    assert "▼ 8.2 min vs previous 7 d" in mttr and "trend-good" in mttr  # shorter: good
    assert 'aria-current="true" class="current" data-window="7d"' in text
    text = viewer_client.get("/dashboard/summary?window=30d").text
    assert "nothing to compare with the previous 30 d" in text
    assert "Incidents opened per day" in text and len(re.findall(r'<g class="bar"', text)) == 30
    hours = viewer_client.get("/dashboard/summary?window=24h").text
    assert "Incidents opened per hour" in hours
    assert len(re.findall(r'<g class="bar"', hours)) == 24
    # The page keeps the window for its polling, and its links.
    page = viewer_client.get("/?window=24h").text
    assert 'data-poll-url="/dashboard/summary?window=24h"' in page
    assert '<input type="hidden" name="window" value="24h">' in page


def test_the_bar_chart_has_axes_and_tooltips(
    sessions: sessionmaker[Session], viewer_client: FlaskClient, inventory: list[str]
) -> None:
    now = datetime.now(tz=UTC)
    midnight = now.replace(hour=0, minute=0, second=0, microsecond=0)
    with sessions.begin() as s:
        for _ in range(9):  # today's, even just after midnight
            add_incident(s, max(now - timedelta(minutes=5), midnight), "open")
    text = viewer_client.get("/dashboard/summary").text
    chart = text.split('<svg class="bars"', 1)[1].split("</svg>", 1)[0]
    # A y scale in whole numbers up to at least the highest bar: 0, 3, 6, 9, 12.
    assert re.findall(r'text-anchor="end">(\d+)</text>', chart) == ["0", "3", "6", "9", "12"]
    assert chart.count('class="grid"') == 5
    assert "day of month (UTC)" in chart
    today = now.date().isoformat()
    assert f"<title>{today} UTC: 9 incidents opened</title>" in chart
    assert f'aria-label="{today}: 9 incidents"' in chart
    assert " style=" not in chart


@pytest.mark.parametrize(
    "query", ["window=1y", "window=7D", "window=%3Cscript%3E", "window=7d%00", "window=24h,7d"]
)
def test_a_window_not_on_the_list_is_a_400(
    viewer_client: FlaskClient, inventory: list[str], query: str
) -> None:
    for url in (f"/?{query}", f"/dashboard/summary?{query}"):
        response = viewer_client.get(url)
        assert response.status_code == 400, url
        assert "window must be one of 24h, 7d, 30d" in response.text
        assert "<script>" not in response.text


def test_sparklines_show_their_scale_and_the_trigger(
    viewer_client: FlaskClient, inventory: list[str], sessions: sessionmaker[Session]
) -> None:
    publish(sessions, {"web1": HostStatus.HIGH_CPU, "web2": HostStatus.MEMORY_PRESSURE})
    text = viewer_client.get("/dashboard/hosts").text
    # The ramp is -20 .. 130: shown as it is; drawn clamped to 0..100.
    assert (
        text.count(
            '<span class="spark-scale" aria-hidden="true"><span>max 130</span><span>min -20</span>'
        )
        == 2
    )
    trigger = 85.0  # policies/default.yaml (the test settings): high_cpu acts above it
    line = re.findall(r'<line class="spark-threshold" x1="0" x2="120" y1="([\d.]+)"', text)
    assert line and all(float(y) == pytest.approx(24 - trigger * 24 / 100, abs=0.05) for y in line)
    assert "the policy acts above 85 %" in text
    # Every anomaly draws its line in the alarm colour, not only high CPU.
    assert 'class="host-memory_pressure host-anomaly"' in text


def test_the_trend_is_fast_on_100000_incidents(sessions: sessionmaker[Session]) -> None:
    """Aggregated in SQL: 100,000 incidents over 60 days (made by SQLite itself, in a
    fraction of a second) are summed up for any window in well under a second."""
    now = datetime.now(tz=UTC)
    fill = text(
        """
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 99999),
        t(i, opened, closed) AS (
            SELECT i, julianday(:now) - i * 51 / 86400.0,
                   julianday(:now) - i * 51 / 86400.0 + (60 + i % 300) / 86400.0
            FROM n
        )
        INSERT INTO incidents (host, kind, status, attempts, opened_at, updated_at, closed_at,
                               cpu_before, cpu_after, summary)
        SELECT 'host' || (i % 1000), 'high_cpu',
               CASE i % 4 WHEN 1 THEN 'escalated' WHEN 2 THEN 'failed' ELSE 'resolved' END, 1,
               strftime('%Y-%m-%d %H:%M:%f', opened), strftime('%Y-%m-%d %H:%M:%f', closed),
               strftime('%Y-%m-%d %H:%M:%f', closed), 95.0, 40.0, 'hot'
        FROM t
        """
    )
    with sessions.begin() as s:
        s.execute(fill, {"now": now.strftime("%Y-%m-%d %H:%M:%S")})
    for window in ("24h", "7d", "30d"):
        started = time.perf_counter()
        trend = fleet_trend(sessions, now=now, window=window)
        took = time.perf_counter() - started
        assert took < 3.0, (window, took)  # about 0.8 s for 30 d on a loaded 2-core machine
        assert trend.current.closed > 0 and trend.previous.closed > 0
        assert trend.current.success_rate == pytest.approx(0.5, abs=0.01)
        assert sum(n for _, n in trend.buckets) > 0


def test_a_maintenance_mark_shows_its_end_as_a_time(
    signed_in: Callable[..., FlaskClient],
    csrf_token: Callable[[FlaskClient], str],
    inventory: list[str],
) -> None:
    inventory.append("localhost")  # the engine's inventory in these settings
    operator = signed_in("operator", "olga")
    data = {"scope": "host", "target": "localhost", "duration": "2h", "reason": "kernel"}
    response = operator.post(
        "/maintenance/start", data={"csrf_token": csrf_token(operator), **data}
    )
    assert response.status_code == 302, re.findall(r"role=\"alert\">([^<]*)", response.text)
    row = operator.get("/dashboard/hosts").text.split('data-host="localhost"', 1)[1]
    row = row.split("</tr>", 1)[0]
    # A <time> in UTC that static/times.js shows in the viewer's zone, not a raw ISO string.
    found = re.search(r'maintenance until <time datetime="([^"]+)">([^<]+) UTC</time>', row)
    assert found, row
    ends = datetime.fromisoformat(found.group(1))
    assert found.group(1).endswith("Z") and "T" not in found.group(2)
    assert abs((ends - datetime.now(tz=UTC)).total_seconds() - 7200) < 120


def _trend(rate: float | None, mttr: float | None) -> FleetTrend:
    empty = WindowRecord(
        closed=0, resolved=0, success_rate=None, mttr_seconds=None, avg_cpu_reduction=None
    )
    now = datetime.now(tz=UTC)
    return FleetTrend(
        window="7d",
        label="7 d",
        start=now - timedelta(days=7),
        end=now,
        current=empty,
        previous=empty,
        rate_change_points=rate,
        mttr_change_seconds=mttr,
        hourly=False,
        buckets=[],
    )


def test_trend_words_say_the_change_and_whether_it_is_good() -> None:
    words = trend_words(_trend(-12.6, 95.0))
    assert words["rate"] == {"tone": "bad", "arrow": "▼", "text": "13 points"}  # a lower rate
    assert words["mttr"] == {"tone": "bad", "arrow": "▲", "text": "95 s"}  # a longer MTTR
    words = trend_words(_trend(1.2, -7300.0))
    assert words["rate"] == {"tone": "good", "arrow": "▲", "text": "1 point"}
    assert words["mttr"] == {"tone": "good", "arrow": "▼", "text": "2.0 h"}
    # Less than what the page shows: the same, not an arrow over "0 points".
    assert trend_words(_trend(0.4, 0.3)) == {
        "rate": {"tone": "same", "arrow": "=", "text": ""},
        "mttr": {"tone": "same", "arrow": "=", "text": ""},
    }
    assert trend_words(_trend(None, None)) == {"rate": None, "mttr": None}
