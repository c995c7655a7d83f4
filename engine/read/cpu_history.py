"""A host's CPU history over a time range, with what happened on it marked: detections
(incidents opened), runs (start to end, and how they ended) and verifications.

Samples come from Prometheus when a ``RangeReader`` is given (engine/read/cpu_range.py),
else from the last samples the engine publishes with each host's state (about 30). A
Prometheus that fails leaves the reason in ``unavailable`` and the published samples in
place: the page says why, never fails.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.read.cpu_range import HistoryUnavailable, HostSeriesKeys, RangeReader
from engine.read.host_page import touches
from engine.read.hosts import read_host_states
from engine.store.models import Decision, Incident, PlaybookRun
from engine.timeutil import to_dt, to_ts

MAX_MARKERS = 200  # of each kind in one chart: more is a smear, the lists below say the rest
RUN_REACH = timedelta(hours=6)  # a run started this long before the range may still overlap


@dataclass(frozen=True, slots=True)
class Marker:
    """One thing that happened on the host: ``kind`` is detected, run or verified."""

    kind: str
    at: float
    label: str
    end: float | None = None  # a run's end; None while it runs
    outcome: str | None = None  # a run's status, or a verification's outcome
    incident_id: int | None = None
    run_ident: str | None = None


@dataclass(frozen=True, slots=True)
class History:
    """Samples (oldest first) and markers of one host over [start, end]."""

    host: str
    start: float
    end: float
    samples: tuple[tuple[float, float], ...]
    markers: tuple[Marker, ...]
    source: str  # "prometheus" or "engine" (its last published samples)
    unavailable: str | None = None  # why Prometheus' history is missing, if it is
    threshold: float | None = None  # the policy's trigger, drawn as a line


def stored_samples(
    sessions: sessionmaker[Session], host: str, start: float, end: float
) -> list[tuple[float, float]]:
    """The engine's last published samples of the host within [start, end], oldest first."""
    states = read_host_states(sessions, hosts=[host])
    recent = states[0].recent or [] if states else []
    points = (
        (float(point[0]), float(point[-1])) for point in recent if isinstance(point, list | tuple)
    )
    return sorted((ts, v) for ts, v in points if start <= ts <= end and math.isfinite(v))


def host_markers(
    sessions: sessionmaker[Session], host: str, start: float, end: float
) -> list[Marker]:
    """Detections, runs and verifications on the host within [start, end], by time."""
    since, until = to_dt(start), to_dt(end)
    with sessions() as session:
        markers = _detections(session, host, since, until)
        runs = session.scalars(
            select(PlaybookRun)
            .where(
                touches(host),
                PlaybookRun.created_at >= since - RUN_REACH,
                PlaybookRun.created_at <= until,
            )
            .order_by(PlaybookRun.id.desc())
            .limit(MAX_MARKERS)
        ).all()
        mine = [r for r in runs if host in (r.hosts or ())]
        mine = [r for r in mine if r.ended_at is None or r.ended_at >= since][:MAX_MARKERS]
        owners = _run_incidents(session, [r.id for r in mine])
        idents = {r.id: r.ident for r in mine}
        for run in mine:
            began = run.started_at or run.created_at
            who = "engine" if run.trigger == "engine" else f"by hand, {run.requested_by}"
            markers.append(
                Marker(
                    kind="run",
                    at=max(to_ts(began), start),
                    end=None if run.ended_at is None else min(to_ts(run.ended_at), end),
                    label=f"run {run.ident}: {run.action} ({who}), {run.status}",
                    outcome=run.status,
                    incident_id=owners.get(run.id),
                    run_ident=run.ident,
                )
            )
        markers += _verifications(session, host, since, until, idents)
    return sorted(markers, key=lambda m: (m.at, m.kind))


def _detections(session: Session, host: str, since: datetime, until: datetime) -> list[Marker]:
    rows = session.scalars(
        select(Incident)
        .where(Incident.host == host, Incident.opened_at >= since, Incident.opened_at <= until)
        .order_by(Incident.id.desc())
        .limit(MAX_MARKERS)
    ).all()
    return [
        Marker(
            kind="detected",
            at=to_ts(row.opened_at),
            label=f"incident {row.id} opened: {row.kind.replace('_', ' ')}",
            outcome=row.status,
            incident_id=row.id,
        )
        for row in rows
    ]


def _run_incidents(session: Session, run_ids: list[int]) -> dict[int, int]:
    """The incident each engine run was started for (runs by hand have none)."""
    if not run_ids:
        return {}
    query = select(Decision.run_id, Decision.incident_id).where(Decision.run_id.in_(run_ids))
    return {int(run): int(incident) for run, incident in session.execute(query) if run}


def _verifications(
    session: Session, host: str, since: datetime, until: datetime, idents: dict[int, str]
) -> list[Marker]:
    rows = session.scalars(
        select(Decision)
        .where(
            Decision.host == host,
            Decision.created_at >= since - RUN_REACH,
            Decision.outcome_at >= since,
            Decision.outcome_at <= until,
        )
        .order_by(Decision.id.desc())
        .limit(MAX_MARKERS)
    ).all()
    return [
        Marker(
            kind="verified",
            at=to_ts(row.outcome_at),
            label=f"verified: {(row.outcome or 'unknown').replace('_', ' ')} after {row.action}",
            outcome=row.outcome,
            incident_id=row.incident_id,
            run_ident=idents.get(row.run_id) if row.run_id else None,
        )
        for row in rows
        if row.outcome_at is not None and row.outcome != "running"
    ]


def cpu_history(
    sessions: sessionmaker[Session],
    host: str,
    start: float,
    end: float,
    *,
    reader: RangeReader | None = None,
    keys: HostSeriesKeys | None = None,
    threshold: float | None = None,
    stored: bool = True,
) -> History:
    """The host's samples and markers over [start, end]: from Prometheus when ``reader``
    is given (``keys``: its series' labels), else the engine's last published samples
    (``stored``: False when those are of another signal kind than the chart's)."""
    if end <= start:
        raise ValueError(f"a history ends after it starts ({start} .. {end})")
    markers = tuple(host_markers(sessions, host, start, end))
    unavailable = None
    if reader is not None:
        try:
            found = reader.read(keys or HostSeriesKeys(host, bare=(host,)), start, end)
        except HistoryUnavailable as exc:
            unavailable = str(exc)
        else:
            return History(host, start, end, tuple(found), markers, "prometheus", None, threshold)
    if not stored:
        why = "the engine publishes another signal's samples for this host now"
        unavailable = why if unavailable is None else f"{unavailable}; {why}"
        return History(host, start, end, (), markers, "engine", unavailable, threshold)
    samples = tuple(stored_samples(sessions, host, start, end))
    return History(host, start, end, samples, markers, "engine", unavailable, threshold)
