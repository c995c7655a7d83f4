"""What a planner is asked about, and the seam every planner sits behind.

A planner only advises; the policy gate (engine/policy/gate.py) decides.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from engine.types import HostHistory, HostHolds, HostState, HostStatus, Proposal, Sample


@dataclass(frozen=True, slots=True)
class Situation:
    """Everything a planner may look at for one decision about one host."""

    host: str
    state: HostState
    incident_id: int
    tried: tuple[str, ...]  # actions already run in this incident, in order
    history: HostHistory
    fleet: Mapping[HostStatus, int]  # how many hosts are in each state
    actions: Mapping[str, str]  # whitelisted action name -> description
    ladder: tuple[str, ...]
    now: float
    samples: tuple[Sample, ...] = ()  # the host's metric window this tick
    labels: Mapping[str, str] = field(default_factory=dict)  # inventory autosre_labels
    kind: str = "high_cpu"  # the signal kind of the incident (engine/signals.py)
    # Maintenance windows and a flapping take-out (engine/policy/suppress.py): for the gate.
    holds: HostHolds = field(default_factory=HostHolds)


class Planner(Protocol):
    """Anything that proposes an action for a situation."""

    name: str

    def propose(self, situation: Situation) -> Proposal:
        """Return one proposal; never raise for a situation it does not understand."""
        ...

    def quick(self, situation: Situation) -> Proposal | None:
        """The proposal if it needs no waiting (rules, a cached or deterministic answer)."""
        ...


def recent_failures(history: HostHistory, action: str, *, since: float) -> int:
    """How many times an action failed to cure this host since a time."""
    return sum(
        1
        for attempt in history.attempts
        if attempt.action == action and attempt.succeeded is False and attempt.started_at >= since
    )
