"""GET /healthz and GET /metrics on a real store, SQLite and PostgreSQL, without signing in.

Rows come from the Recorder and the LivePublisher, as in production;
/metrics is parsed with prometheus_client's own parser.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import create_engine
from sqlalchemy.orm import Session, sessionmaker

from engine.incident.life import IncidentStatus
from engine.lease.registry import Registry
from engine.record.audit import AuditLog
from engine.record.live import LivePublisher
from engine.record.recorder import Recorder
from engine.store.leases import ReplicaRow
from engine.types import (
    HostRunStats,
    HostState,
    HostStatus,
    PlannerCall,
    Proposal,
    RunRequest,
    RunResult,
    Sample,
    Verdict,
    VerdictKind,
)
from webui.health import bp

pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
SECRET = "sk-test-0123456789abcdef"


@pytest.fixture(autouse=True)
def health(app: Flask) -> None:
    """The blueprint, unless create_app registers it already."""
    if "health" not in app.blueprints:
        app.register_blueprint(bp)


def publish(
    sessions: sessionmaker[Session],
    statuses: dict[str, HostStatus],
    *,
    at: float,
    durations: tuple[float, ...] = (0.5,),
    unmatched: int = 0,
) -> None:
    """Publish these host states once per duration (every call writes)."""
    states = {
        host: HostState(host, status, 40.0, at - 60, f"label instance={host}", at)
        for host, status in statuses.items()
    }
    windows = {host: (Sample(host, at, 40.0),) for host in statuses}
    publisher = LivePublisher(sessions, every=0.0, clock=lambda: at)
    for duration in durations:
        publisher.publish(states, windows, duration, unmatched=unmatched)


def parse(text: str) -> Samples:
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


def test_healthz_degraded_before_the_engine_ever_ticked(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json
    assert body is not None and body.pop("disk")["status"] == "ok"
    assert body == {
        "status": "degraded",
        "database": "ok",
        "engine": {"last_tick": None, "age_seconds": None},
        "replicas": [],
    }


def test_healthz_and_metrics_show_each_replica_with_its_hosts_and_run_leases(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    """Two replicas beat, a third went silent two minutes ago: each is listed with its
    counts, the silent one not alive; no host name is shown."""
    lively = Registry(sessions, "replica-a", ttl=30.0, run_leases=lambda: 2)
    other = Registry(sessions, "replica-b", ttl=30.0)
    with sessions.begin() as session:
        lively.beat(session, hosts=600)
        other.beat(session, hosts=400)
        session.add(
            ReplicaRow(
                id="replica-gone",
                started_at=datetime.now(UTC) - timedelta(hours=1),
                heartbeat_at=datetime.now(UTC) - timedelta(minutes=2),
                hosts=500,
                run_leases=1,
                ttl=30.0,
            )
        )
    body = client.get("/healthz").json
    assert body is not None
    seen = {r["id"]: (r["alive"], r["hosts"], r["run_leases"]) for r in body["replicas"]}
    assert seen == {
        "replica-a": (True, 600, 2),
        "replica-b": (True, 400, 0),
        "replica-gone": (False, 500, 1),
    }
    gone = next(r for r in body["replicas"] if r["id"] == "replica-gone")
    assert 110 <= gone["heartbeat_age_seconds"] < 200
    samples = parse(client.get("/metrics").text)
    assert value(samples, "autosre_replica_up", replica="replica-a") == 1
    assert value(samples, "autosre_replica_up", replica="replica-gone") == 0
    assert value(samples, "autosre_replica_hosts", replica="replica-b") == 400
    assert value(samples, "autosre_replica_run_leases", replica="replica-a") == 2
    other.leave()  # a clean stop leaves the list
    body = client.get("/healthz").json
    assert body is not None
    assert {r["id"] for r in body["replicas"]} == {"replica-a", "replica-gone"}


def test_healthz_ok_while_the_engine_ticks_degraded_when_it_stalls(
    client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    now = time.time()
    publish(sessions, {"web1": HostStatus.NORMAL}, at=now - 2)
    response = client.get("/healthz")
    assert response.status_code == 200
    body = response.json
    assert body is not None
    assert body["status"] == "ok"
    assert body["database"] == "ok"
    last = datetime.fromisoformat(body["engine"]["last_tick"].replace("Z", "+00:00"))
    assert last == datetime.fromtimestamp(now - 2, UTC)
    assert 2 <= body["engine"]["age_seconds"] < 30

    # The interval is 10 s (the default) and stats may lag 5 s: 100 s is a stalled engine.
    publish(sessions, {"web1": HostStatus.NORMAL}, at=now - 100)
    body = client.get("/healthz").json
    assert body is not None
    assert body["status"] == "degraded"
    assert body["database"] == "ok"
    assert body["engine"]["age_seconds"] >= 100


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@pytest.fixture
def store_down(app: Flask, database_url: str, tmp_path: Path) -> Iterator[None]:
    """The app's store swapped for one that cannot connect, of the same backend."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'missing' / 'autosre.db'}"
    else:
        url = f"postgresql+psycopg://postgres:{SECRET}@127.0.0.1:{closed_port()}/autosre"
    engine = create_engine(url)
    real = app.extensions["autosre"]
    app.extensions["autosre"] = sessionmaker(engine)
    try:
        yield
    finally:
        app.extensions["autosre"] = real
        engine.dispose()


@pytest.mark.usefixtures("store_down")
def test_healthz_503_and_metrics_store_down_when_the_store_does_not_answer(
    client: FlaskClient,
) -> None:
    response = client.get("/healthz")
    assert response.status_code == 503
    body = response.json
    assert body is not None
    assert body["status"] == "degraded"
    assert body["database"].startswith("OperationalError: ")
    assert "[SQL" not in body["database"]
    assert SECRET not in body["database"]
    assert body["engine"] == {"last_tick": None, "age_seconds": None}

    scraped = client.get("/metrics")
    assert scraped.status_code == 200
    assert parse(scraped.text) == {("autosre_store_up", frozenset()): 0.0}


def fill(recorder: Recorder, now: float) -> None:
    """Incidents, model calls, runs and approvals of every kind /metrics counts."""
    wait = Verdict(VerdictKind.AWAIT_APPROVAL, "restart_nginx", "needs a human", "approval")
    go = Verdict(VerdictKind.EXECUTE, "restart_nginx", "allowed", "whitelist")

    def call(
        provider: str, latency: float, *, error: str | None = None, cached: bool = False
    ) -> PlannerCall:
        return PlannerCall(
            provider, "m1", latency, 1, f"prompt {SECRET}", "{}", error=error, cached=cached
        )

    # web1: the model's advice used, held for approval (pending).
    i1 = recorder.incidents.open("web1", "high_cpu", 95.0, "high", at=now - 300, since=now - 360)
    used = Proposal("restart_nginx", 0.9, "hot", planner="gemini", call=call("gemini", 1.5))
    d1 = recorder.decisions.record(i1, "web1", used, wait, now - 290)
    recorder.approvals.request(
        i1, d1, "web1", "restart_nginx", "hot", at=now - 290, expires_at=now + 600
    )

    # web2: the model timed out, the rules decided, an engine run cured it.
    i2 = recorder.incidents.open("web2", "high_cpu", 97.0, "high", at=now - 250, since=now - 300)
    fallback = Proposal(
        "restart_nginx",
        1.0,
        "rules",
        call=call("gemini", 10.0, error="timeout"),
        fallback="gemini unusable: timeout",
    )
    d2 = recorder.decisions.record(i2, "web2", fallback, go, now - 240)
    request = RunRequest("restart_nginx", "/p/restart_nginx.yml", ("web2",))
    r1 = recorder.runs.begin(
        request,
        ident="r1",
        artifact_dir="/tmp/r1",
        trigger="engine",
        requested_by="engine",
        at=now - 240,
        decisions=[(d2, i2)],
    )
    stats = {"web2": HostRunStats(ok=3, changed=1)}
    recorder.runs.end(r1, RunResult("r1", "successful", 0, "/tmp/r1", now - 240, now - 230, stats))
    recorder.incidents.set_status(
        i2, IncidentStatus.RESOLVED, now - 200, "resolved", "ok", close=True
    )

    # web3: a cached answer, held for an approval that has expired unanswered.
    i3 = recorder.incidents.open("web3", "high_cpu", 91.0, "high", at=now - 150, since=now - 200)
    cached = Proposal(
        "restart_nginx", 0.8, "hot", planner="gemini", call=call("gemini", 0.0, cached=True)
    )
    d3 = recorder.decisions.record(i3, "web3", cached, wait, now - 140)
    recorder.approvals.request(
        i3, d3, "web3", "restart_nginx", "hot", at=now - 140, expires_at=now - 10
    )

    # web4: an OpenAI-compatible model's advice, rejected by a human; then the rules alone.
    i4 = recorder.incidents.open("web4", "high_cpu", 99.0, "high", at=now - 60, since=now - 90)
    other = Proposal("restart_nginx", 0.7, "hot", planner="openai", call=call("openai", 0.25))
    d4 = recorder.decisions.record(i4, "web4", other, wait, now - 50)
    a4 = recorder.approvals.request(
        i4, d4, "web4", "restart_nginx", "hot", at=now - 50, expires_at=now + 600
    )
    recorder.approvals.decide(a4, approve=False, by="ada", at=now - 40)
    recorder.incidents.set_status(i4, IncidentStatus.OPEN, now - 35, "rejected", "deciding again")
    recorder.decisions.record(i4, "web4", Proposal("restart_nginx", 1.0, "rules"), wait, now - 30)

    # A failed run by hand.
    request = RunRequest("rollback_nginx", "/p/rollback_nginx.yml", ("web5",))
    r2 = recorder.runs.begin(
        request,
        ident="r2",
        artifact_dir="/tmp/r2",
        trigger="manual",
        requested_by="ada",
        at=now - 20,
    )
    recorder.runs.end(r2, RunResult("r2", "failed", 2, "/tmp/r2", now - 20, now - 15))


def test_metrics_match_the_rows_recorded(
    client: FlaskClient, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    now = time.time()
    fill(Recorder(sessions, AuditLog(tmp_path / "audit.jsonl")), now)
    statuses = {
        "web1": HostStatus.HIGH_CPU,
        "web2": HostStatus.NORMAL,
        "web3": HostStatus.UNKNOWN,
        "web4": HostStatus.NORMAL,
    }
    publish(sessions, statuses, at=now - 1, durations=(0.5, 0.25, 0.25), unmatched=2)

    response = client.get("/metrics")  # nobody signed in
    assert response.status_code == 200
    assert response.content_type.startswith("text/plain")
    text = response.text
    for private in ("web1", "web4", SECRET, "prompt", "/tmp/r1", "ada", "m1", "instance="):
        assert private not in text
    samples = parse(text)

    assert value(samples, "autosre_store_up") == 1
    assert value(samples, "autosre_engine_ticks_total") == 3
    assert value(samples, "autosre_engine_tick_duration_seconds_count") == 3
    assert value(samples, "autosre_engine_tick_duration_seconds_sum") == 1.0
    assert value(samples, "autosre_engine_last_tick_duration_seconds") == 0.25
    assert value(samples, "autosre_engine_last_tick_timestamp_seconds") == pytest.approx(now - 1)
    assert value(samples, "autosre_metrics_unmatched_series") == 2

    incidents = {
        status: value(samples, "autosre_incidents", status=status) for status in IncidentStatus
    }
    assert incidents == {
        "open": 1.0,  # web4, once the engine saw the rejection
        "awaiting_approval": 2.0,  # web1, web3
        "remediating": 0.0,
        "resolved": 1.0,  # web2
        "escalated": 0.0,
        "failed": 0.0,
    }

    runs = {k: v for k, v in samples.items() if k[0] == "autosre_playbook_runs_total"}
    assert runs == {
        (
            "autosre_playbook_runs_total",
            frozenset({"status": "successful", "trigger": "engine"}.items()),
        ): 1.0,
        (
            "autosre_playbook_runs_total",
            frozenset({"status": "failed", "trigger": "manual"}.items()),
        ): 1.0,
    }

    calls = {
        (dict(labels)["provider"], dict(labels)["outcome"]): v
        for (name, labels), v in samples.items()
        if name == "autosre_planner_calls_total"
    }
    assert calls == {
        ("gemini", "used"): 1.0,
        ("gemini", "fallback"): 1.0,
        ("gemini", "cached"): 1.0,
        ("openai", "used"): 1.0,
    }
    latency = "autosre_planner_call_latency_seconds"
    assert value(samples, f"{latency}_count", provider="gemini") == 2  # the cached one cost nothing
    assert value(samples, f"{latency}_sum", provider="gemini") == pytest.approx(11.5)
    assert value(samples, f"{latency}_count", provider="openai") == 1
    assert value(samples, f"{latency}_sum", provider="openai") == pytest.approx(0.25)

    hosts = {status: value(samples, "autosre_hosts", status=status) for status in HostStatus}
    assert hosts == {
        "NORMAL": 2.0,
        "HIGH_CPU": 1.0,
        "UNKNOWN": 1.0,
        "MEMORY_PRESSURE": 0.0,
        "DISK_FULL": 0.0,
        "SERVICE_DOWN": 0.0,
    }

    approvals = {
        status: value(samples, "autosre_approvals", status=status)
        for status in ("pending", "approved", "rejected", "expired")
    }
    assert approvals == {"pending": 1.0, "approved": 0.0, "rejected": 1.0, "expired": 1.0}


def test_metrics_in_openmetrics_when_prometheus_asks(client: FlaskClient) -> None:
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert response.status_code == 200
    assert response.content_type.startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert 'autosre_incidents{status="open"} 0' in response.text
