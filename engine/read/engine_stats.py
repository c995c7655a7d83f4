"""The engine's tick counters as it last published them, for /healthz and /metrics."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.read.models import EngineStats
from engine.record.live import (
    LAST_TICK,
    PUBLISH_EVERY,
    TICK_DURATION_LAST,
    TICK_DURATION_SUM,
    TICKS_TOTAL,
    UNMATCHED_SERIES,
)
from engine.store.models import EngineStat

# Field of EngineStats -> the name the publisher stores it under.
STORED_AS = {
    "ticks_total": TICKS_TOTAL,
    "tick_duration_last": TICK_DURATION_LAST,
    "tick_duration_sum": TICK_DURATION_SUM,
    "last_tick": LAST_TICK,
    "publish_every": PUBLISH_EVERY,
    "unmatched_series": UNMATCHED_SERIES,
}


def engine_stats_in(session: Session) -> EngineStats:
    """The stats, read in the caller's session."""
    stored = dict(session.execute(select(EngineStat.name, EngineStat.value)).all())
    return EngineStats.model_validate(
        {field: stored[name] for field, name in STORED_AS.items() if name in stored}
    )


def read_engine_stats(sessions: sessionmaker[Session]) -> EngineStats:
    """The stats, in a session of their own."""
    with sessions() as session:
        return engine_stats_in(session)
