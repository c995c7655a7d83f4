"""Per-host remediation tracking: where each open incident is in its ladder.

The engine's tick (engine/loop.py) drives these; the store holds the record.
"""

from __future__ import annotations

import enum
from concurrent.futures import Future
from dataclasses import dataclass, field

from engine.plan.rules import Situation
from engine.types import IncidentStatus, Proposal


class Phase(enum.StrEnum):
    """Where an incident's remediation stands between ticks."""

    DECIDING = "deciding"  # high and not being worked on: decide at the next chance
    PLANNING = "planning"  # a planner is working on a proposal (off the tick)
    AWAITING_APPROVAL = "awaiting_approval"  # a human must approve the proposed action
    RUNNING = "running"  # a playbook run is in flight
    VERIFYING = "verifying"  # the run ended; waiting for fresh data to judge it
    ESCALATED = "escalated"  # a human was told; no more actions until the host recovers


@dataclass(slots=True)
class Track:
    """The engine's working memory of one active incident."""

    incident_id: int
    host: str
    tried: list[str] = field(default_factory=list)
    phase: Phase = Phase.DECIDING
    decision_id: int | None = None
    run_ended: float = 0.0
    verify_after: float = 0.0
    verify_deadline: float = 0.0
    retry_at: float = 0.0
    last_verdict: tuple[str, str] | None = None
    noted_unknown: bool = False
    plan: Future[Proposal] | None = None
    situation: Situation | None = None  # what the running plan was asked about
    approval_id: int | None = None
    final_status: IncidentStatus = IncidentStatus.ESCALATED  # kept when the host recovers

    def after_run(
        self, action: str, *, host_ok: bool, ended_at: float, settle: float, verify_timeout: float
    ) -> None:
        """A run ended: verify it if it worked on this host, else decide again."""
        self.tried.append(action)
        self.run_ended = ended_at
        if host_ok:
            self.phase = Phase.VERIFYING
            self.verify_after = ended_at + settle
            self.verify_deadline = self.verify_after + verify_timeout
        else:
            self.phase = Phase.DECIDING
            self.decision_id = None


@dataclass(slots=True)
class Pending:
    """A decided run waiting for this tick's batch launch."""

    host: str
    track: Track
    decision_id: int
