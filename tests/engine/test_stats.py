"""Fleet summary, incident search and host states on both real backends (tests/engine/conftest.py).

Rows come from the Recorder and the LivePublisher, as in production.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.incident.life import ACTIVE_STATUSES, IncidentStatus
from engine.read.fleet import fleet_summary
from engine.read.hosts import host_statuses, read_host_states, sparkline
from engine.read.incidents import active_incident_status, escape_like, list_incidents
from engine.record.live import LivePublisher
from engine.record.recorder import Recorder
from engine.types import HostState, HostStatus, Proposal, RunRequest, Sample, Verdict, VerdictKind

T0 = 1_700_000_000.0  # 2023-11-14 22:13:20 UTC
NOW = datetime.fromtimestamp(T0, tz=UTC)
DAY = 86_400.0
PROPOSAL = Proposal("restart_nginx", 0.9, "busy", "rules")
EXECUTE = Verdict(VerdictKind.EXECUTE, "restart_nginx", "first rung", "ladder")
WAIT = Verdict(VerdictKind.AWAIT_APPROVAL, "restart_nginx", "needs a human", "approval")


def incident(
    recorder: Recorder,
    host: str,
    at: float,
    *,
    cpu: float = 90.0,
    summary: str | None = None,
    kind: str = "high_cpu",
) -> int:
    return recorder.incidents.open(host, kind, cpu, summary or f"CPU {cpu}%", at=at, since=at - 10)


def close(
    recorder: Recorder, incident_id: int, status: IncidentStatus, at: float, cpu: float | None
) -> None:
    recorder.incidents.set_status(
        incident_id, status, at, str(status), "closed", value_after=cpu, close=True
    )


def search(
    sessions: sessionmaker[Session], **filters: Any
) -> tuple[list[dict[str, Any]], int | None]:
    """A page of ``list_incidents`` as JSON dicts, and the next page's ``before_id``."""
    page = list_incidents(sessions, **filters)
    return [row.model_dump(mode="json") for row in page.items], page.next_before


def fill(recorder: Recorder) -> dict[str, int]:
    """A small fleet history whose numbers are worked out by hand in the tests."""
    ids = {}
    ids["resolved_today"] = i = incident(recorder, "web1", T0 - 3600, cpu=90.0)
    close(recorder, i, IncidentStatus.RESOLVED, T0 - 3000, 30.0)  # -60 points, 600 s
    ids["resolved_yesterday"] = i = incident(recorder, "web2", T0 - DAY - 100, cpu=80.0)
    close(recorder, i, IncidentStatus.RESOLVED, T0 - DAY + 1100, 40.0)  # -40 points, 1200 s
    ids["escalated"] = i = incident(recorder, "web3", T0 - 7200)
    close(recorder, i, IncidentStatus.ESCALATED, T0 - 7000, None)
    ids["old"] = i = incident(recorder, "web1", T0 - 30 * DAY, cpu=99.0)
    close(recorder, i, IncidentStatus.RESOLVED, T0 - 29 * DAY, 10.0)  # outside the window
    ids["open"] = incident(recorder, "web4", T0 - 600)
    ids["awaiting"] = i = incident(recorder, "web5", T0 - 500)
    d = recorder.decisions.record(i, "web5", PROPOSAL, WAIT, T0 - 490)
    recorder.approvals.request(i, d, "web5", "restart_nginx", "busy", at=T0 - 490, expires_at=T0)
    ids["remediating"] = i = incident(recorder, "web6", T0 - 400)
    d = recorder.decisions.record(i, "web6", PROPOSAL, EXECUTE, T0 - 390)
    recorder.runs.begin(
        RunRequest("restart_nginx", "/p/restart_nginx.yml", ("web6",)),
        ident="run-1",
        artifact_dir="/tmp/run-1",
        trigger="engine",
        requested_by="engine",
        at=T0 - 380,
        decisions=[(d, i)],
    )
    return ids


def test_fleet_summary_on_a_known_history(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    fill(recorder)
    summary = fleet_summary(sessions, now=NOW).model_dump()
    assert summary["window_days"] == 7
    assert summary["since"] == "2023-11-08"
    assert summary["closed"] == 3
    assert summary["resolved"] == 2
    assert summary["success_rate"] == pytest.approx(2 / 3)
    assert summary["avg_cpu_reduction"] == pytest.approx(50.0)
    assert summary["mttr_seconds"] == pytest.approx(900.0, abs=0.01)
    assert summary["open_by_status"] == {"open": 1, "awaiting_approval": 1, "remediating": 1}
    assert summary["open_total"] == 3
    days = [day for day, _ in summary["per_day"]]
    assert days == [f"2023-11-{d:02d}" for d in range(8, 15)]
    counts = dict(summary["per_day"])
    assert counts["2023-11-14"] == 5
    assert counts["2023-11-13"] == 1
    assert sum(counts.values()) == 6  # the 30-day-old one is outside


def test_fleet_summary_of_an_empty_store(sessions: sessionmaker[Session]) -> None:
    summary = fleet_summary(sessions, now=NOW, window_days=3).model_dump()
    assert summary["success_rate"] is None
    assert summary["avg_cpu_reduction"] is None
    assert summary["mttr_seconds"] is None
    assert summary["open_total"] == 0
    assert summary["per_day"] == [("2023-11-12", 0), ("2023-11-13", 0), ("2023-11-14", 0)]


def test_search_pages_by_id_newest_first(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    ids = [incident(recorder, f"web{n}", T0 + n) for n in range(5)]
    seen: list[int] = []
    before: int | None = None
    pages = 0
    while True:
        rows, before = search(sessions, limit=2, before_id=before)
        seen.extend(row["id"] for row in rows)
        pages += 1
        if before is None:
            break
    assert seen == sorted(ids, reverse=True)
    assert pages == 3
    rows, before = search(sessions, limit=5)
    assert len(rows) == 5
    assert before is None  # no empty last page


def test_search_filters(recorder: Recorder, sessions: sessionmaker[Session]) -> None:
    ids = fill(recorder)
    other = incident(recorder, "db1", T0 - 100, kind="disk_full")

    def found(**filters: object) -> set[int]:
        rows, _ = search(sessions, limit=100, **filters)
        return {row["id"] for row in rows}

    assert found(host="web1") == {ids["resolved_today"], ids["old"]}
    assert found(status="resolved") == {
        ids["resolved_today"],
        ids["resolved_yesterday"],
        ids["old"],
    }
    assert found(kind="disk_full") == {other}
    today = datetime(2023, 11, 14, tzinfo=UTC)
    yesterday = today - timedelta(days=1)
    assert found(since=yesterday, until=today) == {ids["resolved_yesterday"]}
    assert found(since=today, host="web1", status="resolved") == {ids["resolved_today"]}
    assert found(q="WEB6") == {ids["remediating"]}  # case-insensitive, host
    assert found(q="closed") == {  # summary (set_status writes it)
        ids["resolved_today"],
        ids["resolved_yesterday"],
        ids["escalated"],
        ids["old"],
    }


def test_search_text_is_literal(recorder: Recorder, sessions: sessionmaker[Session]) -> None:
    percent = incident(recorder, "web1", T0, summary="100% busy")
    incident(recorder, "web2", T0, summary="1000 busy")
    under = incident(recorder, "web3", T0, summary="a_b stuck")
    incident(recorder, "web4", T0, summary="axb stuck")
    slash = incident(recorder, "web5", T0, summary="c:\\temp full")

    def found(q: str) -> set[int]:
        return {row["id"] for row in search(sessions, q=q)[0]}

    assert found("0%") == {percent}
    assert found("a_b") == {under}
    assert found("%") == {percent}
    assert found("\\") == {slash}
    assert escape_like("50%_\\") == "50\\%\\_\\\\"


def test_open_incidents_and_active_hosts(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    ids = fill(recorder)
    assert [row.id for row in list_incidents(sessions, status=ACTIVE_STATUSES).items] == [
        ids["remediating"],
        ids["awaiting"],
        ids["open"],
    ]
    assert active_incident_status(sessions) == {
        "web4": "open",
        "web5": "awaiting_approval",
        "web6": "remediating",
    }


def test_host_states_and_samples(sessions: sessionmaker[Session]) -> None:
    states = {
        "web1": HostState("web1", HostStatus.HIGH_CPU, 97.0, T0 - 60, "hot", T0),
        "web2": HostState("web2", HostStatus.UNKNOWN, None, T0 - 60, "no data"),
    }
    windows = {"web1": tuple(Sample("web1", T0 - 10 + n, 90.0 + n) for n in range(3))}
    LivePublisher(sessions, every=0.0, clock=lambda: T0).publish(states, windows, 0.1)
    brief = read_host_states(sessions, recent=False)
    assert {s.host: (s.status, s.value, s.recent) for s in brief} == {
        "web1": ("HIGH_CPU", 97.0, None),
        "web2": ("UNKNOWN", None, None),
    }
    assert "recent" not in brief[0].model_dump(mode="json")
    found = read_host_states(sessions, hosts=["web1", "web2", "web9"])
    assert {s.host: sparkline(s) for s in found} == {"web1": [90.0, 91.0, 92.0], "web2": []}
    assert found[0].model_dump(mode="json")["recent"] == [[T0 - 10 + n, 90.0 + n] for n in range(3)]
    assert read_host_states(sessions, hosts=[]) == []
    assert host_statuses(sessions) == {"web1": "HIGH_CPU", "web2": "UNKNOWN"}
    assert [s.host for s in read_host_states(sessions, status="UNKNOWN", limit=1)] == ["web2"]
