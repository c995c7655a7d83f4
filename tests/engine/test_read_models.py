"""The read models: built from stored rows, dumped to the JSON the CLI and the API print.

The field names and shapes are pinned here as the API and the CLI have always shown them;
rows come from tests/webui/seed.py (inserted directly), on both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session, sessionmaker

from engine.read.approvals import get_approval, list_approvals
from engine.read.engine_stats import read_engine_stats
from engine.read.incidents import incident_detail
from engine.read.metrics import read_store_counts
from engine.read.models import HostState, IncidentDetail, Run
from engine.read.runs import find_run, get_run
from engine.read.users import list_users
from engine.record.live import LivePublisher
from engine.store.accounts import ApiToken, User
from engine.types import HostState as PublishedState
from engine.types import HostStatus, Sample
from tests.webui.seed import NOW, seed

INCIDENT = [
    "id",
    "host",
    "kind",
    "status",
    "action",
    "attempts",
    "opened_at",
    "closed_at",
    "cpu_before",
    "cpu_after",
    "summary",
]
DECISION = [
    "id",
    "at",
    "planner",
    "action",
    "confidence",
    "rationale",
    "verdict",
    "verdict_action",
    "rule",
    "reason",
    "overridden",
    "run_id",
    "outcome",
    "provider",
    "model",
    "latency_ms",
    "attempts",
    "input_tokens",
    "output_tokens",
    "prompt",
    "reply",
    "call_error",
    "cached",
    "fallback",
    "trust",
]
RUN = [
    "id",
    "ident",
    "action",
    "playbook",
    "hosts",
    "check_mode",
    "trigger",
    "requested_by",
    "reason",
    "ticket",
    "extra_var_names",
    "status",
    "rc",
    "stats",
    "artifact_dir",
    "error",
    "started_at",
    "ended_at",
    "cancel_requested_at",
    "cancel_requested_by",
]
APPROVAL = [
    "id",
    "incident_id",
    "host",
    "action",
    "status",
    "rationale",
    "requested_at",
    "expires_at",
    "decided_at",
    "decided_by",
    "note",
]


def test_an_incident_detail_keeps_its_json_shape_and_round_trips(
    sessions: sessionmaker[Session],
) -> None:
    ids = seed(sessions)
    detail = incident_detail(sessions, 1)
    assert detail is not None
    data = detail.model_dump(mode="json")
    assert list(data) == [*INCIDENT, "decisions", "approvals", "runs", "timeline"]
    assert [list(d) for d in data["decisions"]] == [DECISION]
    assert [list(r) for r in data["runs"]] == [RUN]
    assert [list(t) for t in data["timeline"]] == [["at", "kind", "message", "run_id"]]
    assert data["opened_at"] == "2026-01-01T00:00:00Z"
    assert data["runs"][0]["ended_at"] == "2026-01-01T00:00:09Z"
    assert data["decisions"][0]["at"] == "2026-01-01T00:00:00Z"
    assert data["runs"][0]["id"] == data["decisions"][0]["run_id"] == ids["run"]
    assert data["closed_at"] is None and data["approvals"] == []
    assert IncidentDetail.model_validate(data) == detail  # what the JSON says is all there is
    assert incident_detail(sessions, 999) is None


def test_approvals_show_expired_as_of_the_time_asked(sessions: sessionmaker[Session]) -> None:
    ids = seed(sessions)
    now = NOW.timestamp()
    pending = list_approvals(sessions, now=now)
    assert [a.id for a in pending] == [ids["pending"]]
    assert list(pending[0].model_dump(mode="json")) == APPROVAL
    expired = get_approval(sessions, ids["expired"], now=now)
    assert expired is not None and expired.status == "expired"
    later = get_approval(sessions, ids["pending"], now=now + 7200)
    assert later is not None and later.model_dump(mode="json")["status"] == "expired"
    assert get_approval(sessions, 999) is None


def test_runs_by_id_and_by_ident(sessions: sessionmaker[Session]) -> None:
    ids = seed(sessions)
    run = get_run(sessions, ids["run"])
    assert run is not None and find_run(sessions, "r1") == run
    assert run.model_dump(mode="json")["stats"] == {"web1": {"ok": 3}}
    assert Run.model_validate(run.model_dump(mode="json")) == run
    assert find_run(sessions, "r2") is None and get_run(sessions, 999) is None


def test_a_host_state_leaves_out_the_samples_it_did_not_read() -> None:
    fields = {
        "host": "web1",
        "status": "HIGH_CPU",
        "value": None,
        "reason": "no data",
        "since": datetime(2026, 11, 30, 12, tzinfo=UTC),
        "sample_ts": None,
        "updated_at": datetime(2026, 11, 30, 12, 0, 5, tzinfo=UTC),
    }
    brief = HostState.model_validate(fields).model_dump(mode="json")
    assert "recent" not in brief
    assert brief["since"] == "2026-11-30T12:00:00Z" and brief["value"] is None
    full = HostState.model_validate({**fields, "recent": [[1, 2]]}).model_dump(mode="json")
    assert full == {**brief, "recent": [[1.0, 2.0]]}


def test_users_with_their_token_counts(sessions: sessionmaker[Session]) -> None:
    at = datetime(2026, 11, 30, 12, tzinfo=UTC)
    with sessions.begin() as session:
        bob = User(name="bob", password_hash="x", role="admin", created_at=at)
        alice = User(name="alice", password_hash="x", role="viewer", created_at=at, disabled=True)
        session.add_all([bob, alice])
        session.flush()
        for n in range(2):
            session.add(ApiToken(user_id=bob.id, name=f"t{n}", token_hash=f"h{n}", created_at=at))
    rows = [u.model_dump(mode="json") for u in list_users(sessions)]
    assert [(u["name"], u["role"], u["disabled"], u["tokens"]) for u in rows] == [
        ("alice", "viewer", True, 0),
        ("bob", "admin", False, 2),
    ]
    assert list(rows[0]) == ["id", "name", "role", "disabled", "created_at", "tokens"]
    assert rows[0]["created_at"] == "2026-11-30T12:00:00Z"


def test_engine_stats_and_store_counts(sessions: sessionmaker[Session]) -> None:
    assert read_engine_stats(sessions).last_tick is None  # before the engine's first tick
    seed(sessions)
    t0 = NOW.timestamp()
    state = PublishedState("web9", HostStatus.HIGH_CPU, 97.0, t0 - 60, "hot", t0)
    publisher = LivePublisher(sessions, every=0.0, clock=lambda: t0)
    publisher.publish({"web9": state}, {"web9": (Sample("web9", t0, 97.0),)}, 0.25)
    stats = read_engine_stats(sessions)
    assert (stats.ticks_total, stats.tick_duration_last, stats.last_tick) == (1.0, 0.25, t0)
    counts = read_store_counts(sessions, now=NOW + timedelta(seconds=1))
    assert counts.engine == stats
    assert counts.incidents == {
        "open": 2,
        "awaiting_approval": 2,
        "remediating": 0,
        "resolved": 1,
        "escalated": 1,
        "failed": 0,
    }
    assert counts.runs == {("successful", "engine"): 1}
    # The seed's three, and web9; every status is present, zero when absent.
    assert counts.hosts == {
        "NORMAL": 1,
        "HIGH_CPU": 2,
        "UNKNOWN": 1,
        "MEMORY_PRESSURE": 0,
        "DISK_FULL": 0,
        "SERVICE_DOWN": 0,
    }
    assert counts.approvals == {"pending": 1, "approved": 1, "rejected": 0, "expired": 1}
    assert counts.planner.by_outcome == {} and counts.planner.made == {}
