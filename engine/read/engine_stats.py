"""The engine's tick counters as it last published them, for /healthz and /metrics; and how
fresh the host states it published are, for the web UI's freshness bar."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field
from sqlalchemy import case, func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.read.models import EngineStats, ReadModel
from engine.record.live import (
    LAST_TICK,
    METRICS_READ_OK,
    PUBLISH_EVERY,
    STORE_WRITE_FAILURES,
    STORE_WRITE_OK,
    TICK_DURATION_LAST,
    TICK_DURATION_SUM,
    TICKS_TOTAL,
    UNMATCHED_SERIES,
)
from engine.store.models import EngineStat, HostStateRow
from engine.types import HostStatus

# Field of EngineStats -> the name the publisher stores it under.
STORED_AS = {
    "ticks_total": TICKS_TOTAL,
    "tick_duration_last": TICK_DURATION_LAST,
    "tick_duration_sum": TICK_DURATION_SUM,
    "last_tick": LAST_TICK,
    "publish_every": PUBLISH_EVERY,
    "unmatched_series": UNMATCHED_SERIES,
}


# Counters replicas add up; the other stats are the latest (largest) of any replica's.
SUMMED = frozenset({TICKS_TOTAL, TICK_DURATION_SUM, STORE_WRITE_FAILURES})


def engine_stats_in(session: Session) -> EngineStats:
    """The stats, read in the caller's session: one engine's, or every replica's together
    (each stores its own as ``<name>@<replica>``)."""
    found: dict[str, float] = {}
    for stored, value in session.execute(select(EngineStat.name, EngineStat.value)).all():
        name = str(stored).partition("@")[0]
        if name in found:
            found[name] = found[name] + value if name in SUMMED else max(found[name], value)
        else:
            found[name] = float(value)
    return EngineStats.model_validate(
        {field: found[name] for field, name in STORED_AS.items() if name in found}
    )


def read_engine_stats(sessions: sessionmaker[Session]) -> EngineStats:
    """The stats, in a session of their own."""
    with sessions() as session:
        return engine_stats_in(session)


class HostFreshness(ReadModel):
    """How fresh the published host states are: the newest sample and the hosts without data."""

    hosts: int = Field(description="hosts with a published state")
    no_data: int = Field(description="hosts whose state is UNKNOWN (no data, or stale data)")
    newest_sample: datetime | None = Field(description="the newest sample_ts of any host")


def host_freshness_in(session: Session) -> HostFreshness:
    """The freshness of the host states, in the caller's session (one aggregate query)."""
    unknown = case((HostStateRow.status == HostStatus.UNKNOWN.value, 1), else_=0)
    query = select(
        func.count(), func.coalesce(func.sum(unknown), 0), func.max(HostStateRow.sample_ts)
    )
    hosts, no_data, newest = session.execute(query).one()
    return HostFreshness(hosts=int(hosts), no_data=int(no_data), newest_sample=newest)


class Beat(ReadModel):
    """One engine's (or one replica's) heartbeat: UNIX seconds, None before the first."""

    last_tick: float | None = None
    last_metrics_read: float | None = Field(
        default=None, description="the last tick whose every metrics query was answered"
    )
    last_store_write: float | None = Field(
        default=None, description="the last write of the live view that committed"
    )
    store_write_failures: float = Field(
        default=0.0, description="failed writes since start, as of the last one that worked"
    )


class Heartbeat(Beat):
    """The fleet's heartbeat (the latest of any replica, failures summed) and each replica's
    own when replicas share the store."""

    replicas: dict[str, Beat] = Field(default_factory=dict)


HEARTBEAT = {
    LAST_TICK: "last_tick",
    METRICS_READ_OK: "last_metrics_read",
    STORE_WRITE_OK: "last_store_write",
    STORE_WRITE_FAILURES: "store_write_failures",
}


def read_heartbeat(sessions: sessionmaker[Session]) -> Heartbeat:
    """The heartbeat stats, in a session of their own (one query: a few rows per replica)."""
    with sessions() as session:
        rows = session.execute(select(EngineStat.name, EngineStat.value)).all()
    total: dict[str, float] = {}
    each: dict[str, dict[str, float]] = {}
    for stored, value in rows:
        name, _, replica = str(stored).partition("@")
        field = HEARTBEAT.get(name)
        if field is None:
            continue
        if replica:
            each.setdefault(replica, {})[field] = float(value)
        old = total.get(field)
        summed = name in SUMMED
        total[field] = float(value) if old is None else (old + value if summed else max(old, value))
    return Heartbeat.model_validate(
        {**total, "replicas": {r: Beat.model_validate(b) for r, b in sorted(each.items())}}
    )
