"""What happens next to an incident: the values deciding and verifying return.

The incident modules (engine/incident/advance.py, decide.py) look at a track and the
host's state and say what must happen, as a list of steps; the loop (engine/loop.py)
carries the steps out in order, writing each to the store before its side effect. No
incident module calls back into the loop.
"""

from __future__ import annotations

from dataclasses import dataclass

from engine.incident.life import IncidentStatus
from engine.types import Proposal, Verdict, Verification


@dataclass(frozen=True, slots=True)
class Note:
    """Record a timeline event; nothing else changes."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Plan:
    """Ask the planner for a proposal, off the tick."""


@dataclass(frozen=True, slots=True)
class Judge:
    """Pass this proposal (a planner's, or a human's approval) through the policy gate now."""

    proposal: Proposal


@dataclass(frozen=True, slots=True)
class Decided:
    """Record this decision (proposal and verdict); the steps after it refer to it."""

    proposal: Proposal
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class Run:
    """Run this action on the incident's host, batched with others decided this tick."""

    action: str


@dataclass(frozen=True, slots=True)
class AskHuman:
    """Hold this action for a human's approval until it expires."""

    action: str
    rationale: str
    expires_at: float


@dataclass(frozen=True, slots=True)
class Retry:
    """Decide again at this time, not before."""

    at: float


@dataclass(frozen=True, slots=True)
class ExpireApproval:
    """Mark the incident's pending approval expired (no longer wanted, or unanswered)."""

    approval_id: int


@dataclass(frozen=True, slots=True)
class RecordVerification:
    """Store how a run's verification came out, on the decision that ran it."""

    check: Verification


@dataclass(frozen=True, slots=True)
class Reopen:
    """The incident is open again (the run failed, or did not cure): decide again."""

    kind: str
    message: str


@dataclass(frozen=True, slots=True)
class Escalate:
    """Tell a human and stop acting on the host until it recovers."""

    reason: str
    status: IncidentStatus = IncidentStatus.ESCALATED


@dataclass(frozen=True, slots=True)
class TakeOut:
    """Take the host out of automatic remediation (flapping) until a human re-enables it."""

    reason: str


@dataclass(frozen=True, slots=True)
class Close:
    """Close the incident with this status; the engine forgets it."""

    status: IncidentStatus
    kind: str
    message: str
    value: float | None


Step = (
    Note
    | Plan
    | Judge
    | Decided
    | Run
    | AskHuman
    | Retry
    | ExpireApproval
    | RecordVerification
    | Reopen
    | Escalate
    | TakeOut
    | Close
)
