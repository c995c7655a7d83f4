"""The policy's ``retention:`` section: how long run dirs and closed incidents are kept.

    retention:
      artifacts: {max_age: 30d, keep: 2000}   # run dirs older than 30 days, or beyond
                                              # the newest 2000, are deleted
      incidents: {max_age: 180d}              # closed incidents older than this go,
                                              # with their decisions, runs and events

Any limit may be ``null``: nothing is pruned by it. engine/prune.py applies the section
(hourly in the engine, by hand with ``autosre prune``); it never touches an active
incident, a run in flight, or what an active incident refers to.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from engine.durations import parse_duration

Seconds = Annotated[float, BeforeValidator(parse_duration)]
DAY = 86400.0
HOUR = 3600.0


def _at_least_an_hour(value: float | None) -> float | None:
    # Shorter would prune what an operator may still be looking at; 0 is surely a typo.
    if value is not None and value < HOUR:
        raise ValueError(f"must be at least 1h (or null: no age limit), got {value:g}s")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ArtifactRetention(_Strict):
    """Run dirs (runs/<ident>/): deleted when older than max_age or beyond the newest keep."""

    # A month covers the post-incident reviews that read a run's output; 2000 run dirs
    # (a few hundred KB each) bound the disk whatever the fleet's churn.
    max_age: Seconds | None = 30 * DAY
    keep: int | None = Field(2000, ge=1, strict=True)

    @field_validator("max_age")
    @classmethod
    def _age(cls, value: float | None) -> float | None:
        return _at_least_an_hour(value)


class IncidentRetention(_Strict):
    """Closed incidents: deleted with every row that depends on them once this old."""

    # Half a year keeps two quarters of history for reviews and trends; far longer than
    # any window the engine itself looks back over (flapping, failure memory).
    max_age: Seconds | None = 180 * DAY

    @field_validator("max_age")
    @classmethod
    def _age(cls, value: float | None) -> float | None:
        return _at_least_an_hour(value)


class Retention(_Strict):
    """What ``autosre prune`` and the engine's hourly prune remove."""

    artifacts: ArtifactRetention = ArtifactRetention()
    incidents: IncidentRetention = IncidentRetention()
