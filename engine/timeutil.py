"""Conversions between the engine's float timestamps and stored UTC datetimes."""

from __future__ import annotations

from datetime import UTC, datetime


def to_dt(ts: float) -> datetime:
    """UNIX seconds to an aware UTC datetime."""
    return datetime.fromtimestamp(ts, tz=UTC)


def to_ts(value: datetime) -> float:
    """An aware datetime to UNIX seconds."""
    return value.timestamp()


def iso(value: datetime | None) -> str | None:
    """ISO 8601 with a Z, or None."""
    if value is None:
        return None
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
