"""Times for the templates: every time a page shows is UTC ISO 8601 with a Z, which the
``when`` macro puts in a ``<time datetime>`` (static/times.js shows it in the viewer's zone)."""

from __future__ import annotations

from datetime import UTC, datetime

from engine.timeutil import iso


def utc_iso(value: datetime | str | None) -> str | None:
    """``value`` as UTC ISO 8601 with a Z; naive values are UTC, as the store keeps them."""
    if not value:
        return None
    if isinstance(value, datetime):
        return _utc(value)
    try:
        return _utc(datetime.fromisoformat(value))
    except ValueError:
        return value  # not a timestamp: shown as it is, never a 500


def _utc(value: datetime) -> str | None:
    return iso(value if value.tzinfo else value.replace(tzinfo=UTC))
