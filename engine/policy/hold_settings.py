"""The policy's settings for holding the engine back: flapping hosts and maintenance windows.

``remediation.flapping``: a host remediated automatically ``max_remediations`` times within
``window`` (across incidents) is escalated and taken out of automatic remediation when it
needs one more, until a human re-enables it. ``remediation.maintenance.max_duration``: the
longest maintenance window anyone may set; every window has an end.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from engine.durations import parse_duration

Seconds = Annotated[float, BeforeValidator(parse_duration)]
WEEK = 7 * 86400.0


class Flapping(BaseModel):
    """How many automatic remediations one host may need within a window."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_remediations: int = Field(5, ge=1, le=1000)
    window: Seconds = Field(3600.0, gt=0, le=30 * 86400.0)


class MaintenanceLimits(BaseModel):
    """Bounds on maintenance windows (a window that never ends would hide a fleet for good)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_duration: Seconds = Field(WEEK, gt=0, le=90 * 86400.0)
