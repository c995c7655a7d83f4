"""The incident's life: every status and phase, every allowed move, in one place.

A *status* is what the store, the UI and the API show; a *phase* is where the engine's
work on an incident stands between ticks. Each phase has the status it shows, and both
may only move along the tables below (a test walks them):

    phase              shows               moves to
    deciding           open                planning, awaiting_approval, running, escalated, closed
    planning           open                deciding
    awaiting_approval  awaiting_approval   deciding, escalated, closed
    running            remediating         verifying, deciding
    verifying          remediating         deciding, escalated, closed
    escalated          escalated | failed  closed (the host recovered; the status stays)
    closed             (final)             -

A rejected or expired approval escalates: a human said no, or nobody answered, so the
engine stops acting on the host. Deciding and verifying return ``Step`` values (engine/
incident/decide.py, advance.py); the loop carries them out, writing each transition to
the store before its side effect starts.
"""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field

from engine.errors import IllegalMoveError
from engine.plan.situation import Situation
from engine.types import Proposal


class IncidentStatus(enum.StrEnum):
    """What the store and the UI show of an incident."""

    OPEN = "open"
    AWAITING_APPROVAL = "awaiting_approval"
    REMEDIATING = "remediating"
    RESOLVED = "resolved"
    ESCALATED = "escalated"
    FAILED = "failed"


ACTIVE_STATUSES = (
    IncidentStatus.OPEN,
    IncidentStatus.AWAITING_APPROVAL,
    IncidentStatus.REMEDIATING,
)
CLOSED_STATUSES = (IncidentStatus.RESOLVED, IncidentStatus.ESCALATED, IncidentStatus.FAILED)

# Which stored status may follow which. Escalated and failed may be written again: that
# is how an escalated incident is closed once its host recovers.
STATUS_MOVES: Mapping[IncidentStatus, frozenset[IncidentStatus]] = {
    IncidentStatus.OPEN: frozenset(
        {
            IncidentStatus.OPEN,
            IncidentStatus.AWAITING_APPROVAL,
            IncidentStatus.REMEDIATING,
            IncidentStatus.RESOLVED,
            IncidentStatus.ESCALATED,
            IncidentStatus.FAILED,
        }
    ),
    IncidentStatus.AWAITING_APPROVAL: frozenset(
        {
            IncidentStatus.OPEN,
            IncidentStatus.REMEDIATING,
            IncidentStatus.RESOLVED,
            IncidentStatus.ESCALATED,
            IncidentStatus.FAILED,
        }
    ),
    IncidentStatus.REMEDIATING: frozenset(
        {
            IncidentStatus.OPEN,
            IncidentStatus.RESOLVED,
            IncidentStatus.ESCALATED,
            IncidentStatus.FAILED,
        }
    ),
    IncidentStatus.ESCALATED: frozenset({IncidentStatus.ESCALATED}),
    IncidentStatus.FAILED: frozenset({IncidentStatus.FAILED}),
    IncidentStatus.RESOLVED: frozenset(),
}


def check_status_move(old: str, new: IncidentStatus) -> None:
    """Raise IllegalMoveError unless the stored status may go from ``old`` to ``new``."""
    if new not in STATUS_MOVES.get(IncidentStatus(old), frozenset()):
        raise IllegalMoveError(f"an incident cannot go from {old} to {new}")


class Phase(enum.StrEnum):
    """Where the engine's work on an incident stands between ticks."""

    DECIDING = "deciding"  # high and not being worked on: decide at the next chance
    PLANNING = "planning"  # a planner is working on a proposal (off the tick)
    AWAITING_APPROVAL = "awaiting_approval"  # a human must approve the proposed action
    RUNNING = "running"  # a playbook run is in flight
    VERIFYING = "verifying"  # the run ended; waiting for fresh data to judge it
    ESCALATED = "escalated"  # a human was told; no more actions until the host recovers
    CLOSED = "closed"  # nothing more to do; the engine forgets the incident


PHASE_MOVES: Mapping[Phase, frozenset[Phase]] = {
    Phase.DECIDING: frozenset(
        {Phase.PLANNING, Phase.AWAITING_APPROVAL, Phase.RUNNING, Phase.ESCALATED, Phase.CLOSED}
    ),
    Phase.PLANNING: frozenset({Phase.DECIDING}),
    Phase.AWAITING_APPROVAL: frozenset({Phase.DECIDING, Phase.ESCALATED, Phase.CLOSED}),
    # ESCALATED: the run could not reach the host, so no other rung would either.
    Phase.RUNNING: frozenset({Phase.VERIFYING, Phase.DECIDING, Phase.ESCALATED}),
    Phase.VERIFYING: frozenset({Phase.DECIDING, Phase.ESCALATED, Phase.CLOSED}),
    Phase.ESCALATED: frozenset({Phase.CLOSED}),
    Phase.CLOSED: frozenset(),
}

# The stored status each phase shows (escalated shows escalated or failed: see Track).
PHASE_STATUS: Mapping[Phase, frozenset[IncidentStatus]] = {
    Phase.DECIDING: frozenset({IncidentStatus.OPEN, IncidentStatus.AWAITING_APPROVAL}),
    Phase.PLANNING: frozenset({IncidentStatus.OPEN, IncidentStatus.AWAITING_APPROVAL}),
    Phase.AWAITING_APPROVAL: frozenset({IncidentStatus.AWAITING_APPROVAL}),
    Phase.RUNNING: frozenset({IncidentStatus.REMEDIATING}),
    Phase.VERIFYING: frozenset({IncidentStatus.REMEDIATING}),
    Phase.ESCALATED: frozenset({IncidentStatus.ESCALATED, IncidentStatus.FAILED}),
    Phase.CLOSED: frozenset(CLOSED_STATUSES),
}


@dataclass(slots=True)
class Track:
    """The engine's working memory of one active incident; only ``move`` changes its phase."""

    incident_id: int
    host: str
    kind: str = "high_cpu"
    tried: list[str] = field(default_factory=list)
    interrupted: list[str] = field(default_factory=list)  # runs cut off by a crash
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

    def move(self, to: Phase) -> None:
        """Go to another phase; IllegalMoveError if the table does not allow it."""
        if to not in PHASE_MOVES[self.phase]:
            raise IllegalMoveError(
                f"incident {self.incident_id} on {self.host}: {self.phase} cannot go to {to}"
            )
        self.phase = to


def resume(
    incident_id: int,
    host: str,
    kind: str,
    status: str,
    tried: list[str],
    approval_id: int | None,
    interrupted: list[str] | None = None,
) -> Track:
    """The track of an incident the store says is still active, after a restart."""
    track = Track(incident_id, host, kind=kind, tried=list(tried))
    track.interrupted = list(interrupted or ())
    track.final_status = IncidentStatus(status)
    if status == IncidentStatus.AWAITING_APPROVAL and approval_id is not None:
        track.phase = Phase.AWAITING_APPROVAL
        track.approval_id = approval_id
    elif status in (IncidentStatus.ESCALATED, IncidentStatus.FAILED):
        track.phase = Phase.ESCALATED
    # open, remediating (made open again by crash recovery), or awaiting an approval that
    # is gone: decide again.
    return track


def forget_closed(tracks: dict[str, Track], closed: Collection[int]) -> list[str]:
    """Drop the tracks of incidents closed outside the engine (a person resolved them): the
    engine never acts on them again. The hosts let go of."""
    gone = [host for host, track in tracks.items() if track.incident_id in closed]
    for host in gone:
        del tracks[host]
    return gone
