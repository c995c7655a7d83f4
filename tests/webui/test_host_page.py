"""The host page (/hosts/<name>) and the CPU chart on it and on the incident page.

Against a real migrated store through the Flask test client; the Prometheus paths against a
real Prometheus scraping a real node_exporter, and a scripted server that never answers.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts.users import create_user
from engine.components import Components
from engine.inventory_types import Inventory, InventoryHost
from engine.policy.load import load_policy
from engine.read.cpu_history import History, Marker
from engine.read.cpu_range import HostSeriesKeys, host_query, label_regex, regex_literal
from engine.read.host_page import host_runs
from engine.settings import PROJECT_ROOT, load_settings
from engine.store.models import (
    Decision,
    DisabledHostRow,
    HostStateRow,
    Incident,
    MaintenanceWindowRow,
    PlaybookRun,
)
from engine.timeutil import to_dt
from tests.fixtures.prometheus import (
    FakePrometheus,
    NodeExporter,
    PrometheusServer,
    Reply,
    free_port,
)
from tests.webui.conftest import PASSWORD, TEST_CONFIG, Login
from tests.webui.seed import seed
from tests.webui.test_incidents import assert_no_inline_code
from webui import create_app
from webui.dashboard import INVENTORY_KEY, InventoryCache
from webui.host_chart import HEIGHT, LEFT, RIGHT, WIDTH, chart_view, time_ticks
from webui.host_history import chart_title, incident_window, published_kind

MARKER = re.compile(r'data-marker="(\w+)" data-at="([^"]+)"')


def _iso(ts: float) -> str:
    return to_dt(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def _story(sessions: sessionmaker[Session], host: str, now: float) -> dict[str, float]:
    """An incident on ``host`` 30 min ago, its run 2 min later (50 s long), verified after."""
    at = {"opened": now - 1800, "run": now - 1680, "ended": now - 1630, "verified": now - 1600}
    with sessions.begin() as s:
        incident = Incident(
            host=host,
            kind="high_cpu",
            status="resolved",
            attempts=1,
            opened_at=to_dt(at["opened"]),
            updated_at=to_dt(at["verified"]),
            closed_at=to_dt(at["verified"]),
            cpu_before=97.0,
            summary="hot",
        )
        s.add(incident)
        run = PlaybookRun(
            ident="r-story",
            action="restart_nginx",
            playbook="restart_nginx.yml",
            hosts=[host],
            trigger="engine",
            requested_by="engine",
            extra_var_names=[],
            status="successful",
            rc=0,
            stats={},
            artifact_dir="/nowhere",
            created_at=to_dt(at["run"]),
            started_at=to_dt(at["run"]),
            ended_at=to_dt(at["ended"]),
        )
        s.add(run)
        s.flush()
        s.add(
            Decision(
                incident_id=incident.id,
                host=host,
                created_at=to_dt(at["run"] - 5),
                planner="rules",
                action="restart_nginx",
                confidence=1.0,
                rationale="hot",
                verdict="execute",
                rule="allowed",
                reason="ok",
                run_id=run.id,
                outcome="recovered",
                outcome_at=to_dt(at["verified"]),
            )
        )
        s.add(
            HostStateRow(
                host=host,
                status="NORMAL",
                value=12.0,
                reason="cpu 12%",
                since=to_dt(now - 600),
                sample_ts=to_dt(now - 5),
                updated_at=to_dt(now - 5),
                recent=[[now - 30 + i * 5, 10.0 + i] for i in range(6)],
            )
        )
        at["incident"] = incident.id
    return at


# -- the pure parts ----------------------------------------------------------------------


def test_chart_puts_markers_and_samples_at_their_times() -> None:
    start, end = 1_000_000.0, 1_003_600.0
    history = History(
        host="web1",
        start=start,
        end=end,
        samples=((start, 0.0), (start + 15, 100.0), (start + 3000, 50.0)),  # a gap, then one
        markers=(
            Marker("detected", start + 900, "incident 1 opened", incident_id=1),
            Marker("run", start + 1800, "run r1", end=start + 2700, outcome="successful"),
            Marker("verified", start + 2700, "verified", outcome="recovered", incident_id=1),
        ),
        source="prometheus",
        threshold=85.0,
    )
    view = chart_view(history)
    plot = WIDTH - RIGHT - LEFT
    detected, run, verified = view["markers"]
    assert detected["x"] == LEFT + plot / 4
    assert (run["x"], run["x_end"]) == (LEFT + plot / 2, LEFT + plot * 3 / 4)
    assert verified["x"] == LEFT + plot * 3 / 4 and verified["outcome"] == "recovered"
    assert view["lines"][0].split() == [
        f"{LEFT}.0,{HEIGHT - 28}.0",
        f"{round(LEFT + plot / 240, 1)},12.0",
    ]
    assert len(view["lines"]) == 2  # the 45-minute gap is not drawn as a line
    assert view["threshold"]["label"] == "trigger 85%"
    assert view["threshold"]["y"] == round(HEIGHT - 28 - 0.85 * (HEIGHT - 28 - 12), 1)
    assert [t["label"] for t in view["yticks"]] == ["0%", "25%", "50%", "75%", "100%"]


def test_time_ticks_are_round_and_few() -> None:
    ticks = time_ticks(1_000_000.0, 1_003_600.0)
    assert 2 <= len(ticks) <= 6 and all(t % 600 == 0 for t in ticks)
    assert len(time_ticks(0.0, 7 * 86400.0)) <= 8


def test_incident_window_covers_detection_to_close() -> None:
    start, end = incident_window(10_000.0, 10_600.0, now=50_000.0)
    assert start == 10_000.0 - 300.0 and end == 10_600.0 + 120.0
    start, end = incident_window(10_000.0, None, now=10_030.0)  # still open, just opened
    assert start < 10_000.0 < end


def test_host_query_escapes_hostile_names() -> None:
    keys = HostSeriesKeys('a"b\\c', exact=("10.0.0.5:9100",), bare=('a"b\\c', "10.0.0.5"))
    regex = label_regex(keys)
    assert re.fullmatch(regex, "10.0.0.5:9100") and re.fullmatch(regex, "10.0.0.5:9")
    assert not re.fullmatch(regex, "10x0x0x5:9100")  # dots are literal
    assert re.fullmatch(regex, 'a"b\\c:9100') and re.fullmatch(regex, "[10.0.0.5]:1")
    query = host_query('up{{job="x"}}', "instance", keys)
    assert query.count('"') % 2 == 0 and '\\"' in query  # the quote stays inside a string
    assert regex_literal("ü") == "\\x{fc}"


# -- the page ----------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_seeded_host_shows_its_incidents_runs_and_approvals(
    viewer_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    seed(sessions)
    page = viewer_client.get("/hosts/web1")
    assert page.status_code == 200, page.text
    for incident_id in (5, 3, 1):  # web1's, newest first
        assert f'href="/incidents/{incident_id}"' in page.text
    assert page.text.index('href="/incidents/5"') < page.text.index('href="/incidents/1"')
    assert 'href="/incidents/2"' not in page.text  # web2's
    assert 'href="/playbooks/runs/r1"' in page.text
    assert "not in the inventory" in page.text  # known from its records only
    web3 = viewer_client.get("/hosts/web3")
    assert "Waiting for approval" in web3.text and 'href="/incidents/4"' in web3.text


def test_unknown_host_is_404_and_inventory_host_is_known(viewer_client: FlaskClient) -> None:
    for path in ("/hosts/nosuchhost", "/hosts/web1%00", "/hosts/" + "x" * 300):
        missing = viewer_client.get(path)
        assert missing.status_code == 404, path
        assert "No host of that name" in missing.text
    assert viewer_client.get("/hosts/localhost").status_code == 200  # the inventory's
    assert viewer_client.get("/hosts/localhost?range=2y").status_code == 400
    assert viewer_client.get("/hosts/localhost?before=1%2B1").status_code == 400


def test_signed_out_is_sent_to_sign_in(client: FlaskClient) -> None:
    response = client.get("/hosts/localhost")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_viewer_sees_no_run_form_operator_reaches_the_confirmation(
    viewer_client: FlaskClient, operator_client: FlaskClient
) -> None:
    assert 'id="run-here"' not in viewer_client.get("/hosts/localhost").text
    page = operator_client.get("/hosts/localhost").text
    assert 'name="hosts" value="localhost"' in page
    assert 'formaction="/playbooks/restart_nginx/run"' in page
    token = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert token
    confirm = operator_client.post(
        "/playbooks/restart_nginx/run",
        data={
            "csrf_token": token.group(1),
            "hosts": "localhost",
            "reason": "from the host page",
            "check": "1",
        },
    )
    assert confirm.status_code == 200 and 'name="confirm" value="yes"' in confirm.text
    assert 'name="hosts" value="localhost"' in confirm.text


def test_host_names_are_shown_escaped(
    viewer_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    hostile = ["<script>alert(1)</script>", "{{7*7}}", '"><img src=x onerror=alert(1)>']
    now = time.time()
    with sessions.begin() as s:
        for name in hostile:
            s.add(
                Incident(
                    host=name,
                    kind="high_cpu",
                    status="open",
                    opened_at=to_dt(now - 60),
                    updated_at=to_dt(now - 60),
                    summary=f"CPU on {name}",
                )
            )
    for name in hostile:
        page = viewer_client.get("/hosts/" + name.replace("?", "%3F"))
        assert page.status_code == 200, name
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert_no_inline_code(page.text)
    script = viewer_client.get("/hosts/<script>alert(1)</script>").text
    assert "Host &lt;script&gt;alert(1)&lt;/script&gt;" in script
    jinja = viewer_client.get("/hosts/{{7*7}}").text
    assert "Host {{7*7}}" in jinja and "Host 49" not in jinja


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_markers_are_on_the_host_and_incident_charts_at_their_times(
    viewer_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    at = _story(sessions, "web9", time.time())
    page = viewer_client.get("/hosts/web9?range=1h")
    found = MARKER.findall(page.text)
    assert ("detected", _iso(at["opened"])) in found
    assert ("run", _iso(at["run"])) in found
    assert ("verified", _iso(at["verified"])) in found
    assert "the engine's last samples" in page.text and "6 samples" in page.text
    assert 'class="chart-line"' in page.text
    page = viewer_client.get(f"/incidents/{int(at['incident'])}").text
    # The page has a place for the chart, filled after it is shown (app.js: data-load-url).
    assert 'id="incident-chart"' in page and not MARKER.findall(page)
    assert f'data-load-url="/incidents/{int(at["incident"])}/chart"' in page
    incident = viewer_client.get(f"/incidents/{int(at['incident'])}/chart")
    assert sorted(MARKER.findall(incident.text)) == sorted(
        [
            ("detected", _iso(at["opened"])),
            ("run", _iso(at["run"])),
            ("verified", _iso(at["verified"])),
        ]
    )
    assert 'href="/hosts/web9"' in incident.text
    runs = viewer_client.get("/hosts/web9").text
    assert 'href="/playbooks/runs/r-story"' in runs


def test_dashboard_links_host_names_to_their_pages(viewer_client: FlaskClient) -> None:
    assert 'href="/hosts/localhost"' in viewer_client.get("/").text


# -- Prometheus --------------------------------------------------------------------------


@pytest.fixture
def prometheus_app(
    tmp_path: Path, database_url: str, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Flask]]:
    """``make(url, host=InventoryHost, timeout="2s")``: an app whose settings name a
    Prometheus, its inventory the one host given."""
    made: list[Flask] = []

    def make(url: str, host: InventoryHost, timeout: str = "2s") -> Flask:
        settings = load_settings(
            {
                "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
                "AUTOSRE_DATABASE_URL": database_url,
                "AUTOSRE_PROMETHEUS_URL": url,
                "AUTOSRE_PROMETHEUS_TIMEOUT": timeout,
            }
        )
        inventory = Inventory(path=tmp_path / "inventory.yml", hosts={host.name: host})
        app = create_app(TEST_CONFIG, components=Components(settings, inventory=inventory))
        app.extensions[INVENTORY_KEY] = InventoryCache(
            settings.inventory, loader=lambda _path: inventory
        )
        made.append(app)
        return app

    yield make
    for app in made:
        app.extensions["autosre"].kw["bind"].dispose()


def _viewer(app: Flask, make_login: Login) -> FlaskClient:
    create_user(app.extensions["autosre"], "watcher", PASSWORD, "viewer")
    client = app.test_client()
    make_login(client, "watcher")
    return client


def test_history_from_prometheus_is_the_hosts_series_only(
    prometheus_app: Callable[..., Flask],
    prometheus_factory: Callable[..., PrometheusServer],
    node_exporter: NodeExporter,
    login: Login,
) -> None:
    other = node_exporter.address.replace("127.0.0.1", "localhost")
    server = prometheus_factory([node_exporter.address, other])
    policy = load_policy(PROJECT_ROOT / "policies" / "default.yaml")
    rule = policy.signals["high_cpu"]
    web1 = InventoryHost("web1", "127.0.0.1", instance=node_exporter.address)
    keys = HostSeriesKeys("web1", exact=(node_exporter.address,), bare=("web1", "127.0.0.1"))
    deadline = time.monotonic() + 20
    while len(server.query(rule.promql)) < 2:  # both addresses scraped, twice
        assert time.monotonic() < deadline, "no series for both scrape targets"
        time.sleep(0.2)
    only = server.query(host_query(rule.promql, "instance", keys))
    assert [s["metric"] for s in only] == [  # the other address's series is left out
        {"instance": node_exporter.address, "autosre_history_host": "1"}
    ]
    client = _viewer(prometheus_app(server.url, web1), login)
    deadline = time.monotonic() + 20
    while True:  # rate() over 1m needs two scrapes inside the step's window
        page = client.get("/hosts/web1?range=15m")
        assert page.status_code == 200
        if "from Prometheus" in page.text and 'class="chart-line"' in page.text:
            break
        assert time.monotonic() < deadline, page.text
        time.sleep(0.5)
    assert "History unavailable" not in page.text
    # The other signal kinds of the policy, from their own queries (memory: node_exporter's
    # meminfo), each marked as such.
    deadline = time.monotonic() + 20
    while True:
        page = client.get("/hosts/web1?range=15m&kind=memory_pressure")
        assert page.status_code == 200
        if "from Prometheus" in page.text and 'class="chart-line"' in page.text:
            break
        assert time.monotonic() < deadline, page.text
        time.sleep(0.5)
    assert "Memory history" in page.text and 'aria-current="true">Memory<' in page.text


def test_a_chart_of_another_kind_never_shows_the_engines_cpu_samples(
    viewer_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    # Without Prometheus only the engine's published samples exist, and they are of one
    # kind at a time: never drawn under another kind's name.
    _story(sessions, "web1", time.time())
    cpu = viewer_client.get("/hosts/web1")
    assert "CPU history" in cpu.text
    disk = viewer_client.get("/hosts/web1?kind=disk_full")
    assert disk.status_code == 200
    assert "Disk history" in disk.text
    assert "the engine publishes another signal&#39;s samples for this host now" in disk.text
    assert 'class="chart-line"' not in disk.text
    bad = viewer_client.get("/hosts/web1?kind=<script>")
    assert bad.status_code == 400 and "kind must be one of" in bad.text
    assert "<script>" not in bad.text


def test_the_published_samples_kind_follows_the_engine() -> None:
    assert published_kind("DISK_FULL", None) == "disk_full"
    assert published_kind("NORMAL", "memory_pressure") == "memory_pressure"  # its incident's
    assert chart_title("service_down") == "Service down" and chart_title("high_cpu") == "CPU"


@pytest.mark.parametrize("case", ["down", "slow"])
def test_prometheus_down_or_slow_says_history_unavailable(
    case: str,
    prometheus_app: Callable[..., Flask],
    fake_prometheus: FakePrometheus,
    login: Login,
) -> None:
    url = f"http://127.0.0.1:{free_port()}" if case == "down" else fake_prometheus.url
    fake_prometheus.script(Reply(delay=3.0))
    app = prometheus_app(url, InventoryHost("web1", "127.0.0.1"), timeout="0.5s")
    client = _viewer(app, login)
    started = time.monotonic()
    page = client.get("/hosts/web1")
    assert page.status_code == 200
    assert time.monotonic() - started < 2.5
    expected = "cannot be reached" if case == "down" else "no answer within 0.5s"
    assert "History unavailable: Prometheus" in page.text and expected in page.text
    assert "127.0.0.1:" not in page.text.split("History unavailable")[1].split("</p>")[0]


def test_a_slow_prometheus_never_holds_the_incident_page(
    prometheus_app: Callable[..., Flask], fake_prometheus: FakePrometheus, login: Login
) -> None:
    # Prometheus is often the slow one during an incident: the page comes at once, and only
    # its chart (a fragment the page loads afterwards) waits, as long as the timeout.
    fake_prometheus.script(Reply(delay=3.0))
    app = prometheus_app(fake_prometheus.url, InventoryHost("web1", "127.0.0.1"), timeout="2s")
    client = _viewer(app, login)
    incident = int(_story(app.extensions["autosre"], "web1", time.time())["incident"])
    started = time.monotonic()
    page = client.get(f"/incidents/{incident}")
    assert page.status_code == 200 and time.monotonic() - started < 1.5
    assert "Chart around this incident" in page.text
    assert fake_prometheus.requests == [], "the page itself asked Prometheus"
    started = time.monotonic()
    chart = client.get(f"/incidents/{incident}/chart")
    assert chart.status_code == 200 and 1.5 < time.monotonic() - started < 3.0
    assert "History unavailable: Prometheus" in chart.text and "no answer within 2s" in chart.text
    assert client.get("/incidents/999999/chart").status_code == 404


def test_host_link_macros_link_and_escape(app: Flask) -> None:
    with app.test_request_context():
        template = app.jinja_env.from_string(
            '{% from "hosts/_link.html" import host_link, host_links %}'
            "{{ host_link(one) }}|{{ host_links(many) }}"
        )
        html = template.render(one="<b>x</b>", many=["web1", "{{7*7}}"])
    assert '<a href="/hosts/%3Cb%3Ex%3C/b%3E" class="host-link">&lt;b&gt;x&lt;/b&gt;</a>' in html
    assert ">web1</a>, <a" in html and ">{{7*7}}</a>" in html


def test_holds_and_failure_memory_are_shown(
    viewer_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    now = time.time()
    policy = load_policy(PROJECT_ROOT / "policies" / "default.yaml")
    limit = policy.remediation.failure_memory.max_failures
    at = _story(sessions, "web9", now)
    with sessions.begin() as s:
        for n in range(limit):  # the action failed to cure web9 this many times
            s.add(
                Decision(
                    incident_id=int(at["incident"]),
                    host="web9",
                    created_at=to_dt(now - 900 + n),
                    planner="rules",
                    action="rollback_nginx",
                    confidence=1.0,
                    rationale="still hot",
                    verdict="execute",
                    rule="allowed",
                    reason="ok",
                    run_id=1,
                    outcome="not_recovered",
                    outcome_at=to_dt(now - 800 + n),
                )
            )
        s.add(
            DisabledHostRow(
                host="web9",
                disabled_at=to_dt(now - 700),
                reason="remediated 3 times in 1h",
                incident_id=int(at["incident"]),
            )
        )
        s.add(
            MaintenanceWindowRow(
                host="web9",
                reason="kernel upgrade",
                set_by="ada",
                source="web",
                created_at=to_dt(now - 60),
                starts_at=to_dt(now - 60),
                ends_at=to_dt(now + 3600),
            )
        )
    page = viewer_client.get("/hosts/web9").text
    assert f"<code>rollback_nginx</code> failed {limit} time" in page
    assert "blocked: escalates" in page
    assert 'data-automation="off"' in page and "remediated 3 times in 1h" in page
    assert 'data-automation="maintenance"' in page and "kernel upgrade" in page
    assert 'data-automation="on"' not in page


def test_secrets_written_into_records_are_redacted(
    viewer_client: FlaskClient, sessions: sessionmaker[Session], app: Flask
) -> None:
    secret = app.secret_key
    assert isinstance(secret, str)
    at = _story(sessions, "web9", time.time())
    with sessions.begin() as s:
        incident = s.get_one(Incident, int(at["incident"]))
        incident.summary = f"token {secret} leaked"
        s.get_one(HostStateRow, "web9").reason = f"reason {secret}"
    for path in ("/hosts/web9", f"/incidents/{int(at['incident'])}"):
        page = viewer_client.get(path)
        assert page.status_code == 200 and secret not in page.text, path


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_host_runs_match_the_whole_name_only(sessions: sessionmaker[Session]) -> None:
    names = {"web1": ["web1"], "web10": ["web10"], "both": ["web10", "we%1"], "odd": ['w"1']}
    with sessions.begin() as s:
        for ident, hosts in names.items():
            s.add(
                PlaybookRun(
                    ident=ident,
                    action="restart_nginx",
                    playbook="restart_nginx.yml",
                    hosts=hosts,
                    trigger="manual",
                    requested_by="ada",
                    extra_var_names=[],
                    status="successful",
                    stats={},
                    artifact_dir="/nowhere",
                    created_at=to_dt(time.time()),
                )
            )

    def idents(host: str) -> list[str]:
        return [run.ident for run in host_runs(sessions, host).items]

    assert idents("web1") == ["web1"]
    assert idents("web10") == ["both", "web10"]
    assert idents("we%1") == ["both"] and idents("we_1") == [] and idents("%") == []
    assert idents('w"1') == ["odd"]
