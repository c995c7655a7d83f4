"""Plan: a planner proposes one action for an incident, with a confidence and a rationale.

A planner only advises; ``engine.policy.gate`` decides. The rules planner is the
default and the fallback for any other planner (an LLM is a later addition
behind the same ``Planner`` seam).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from engine.types import ESCALATE_ACTION, HostHistory, HostState, HostStatus, Proposal, Sample


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


class Planner(Protocol):
    """Anything that proposes an action for a situation."""

    name: str

    def propose(self, situation: Situation) -> Proposal:
        """Return one proposal; never raise for a situation it does not understand."""
        ...


def recent_failures(history: HostHistory, action: str, *, since: float) -> int:
    """How many times an action failed to cure this host since a time."""
    return sum(
        1
        for attempt in history.attempts
        if attempt.action == action and attempt.succeeded is False and attempt.started_at >= since
    )


class RulesPlanner:
    """Walks the policy's remediation ladder: the next rung not yet tried, else escalate."""

    name = "rules"

    def __init__(
        self, *, confidence: float = 0.9, memory_window: float = 86400.0, max_failures: int = 2
    ) -> None:
        self.confidence = confidence
        self.memory_window = memory_window
        self.max_failures = max_failures

    def propose(self, situation: Situation) -> Proposal:
        """Propose the next untried rung that has not kept failing on this host."""
        since = situation.now - self.memory_window
        skipped: list[str] = []
        for rung in situation.ladder:
            if rung in situation.tried:
                continue
            if recent_failures(situation.history, rung, since=since) >= self.max_failures:
                skipped.append(rung)
                continue
            note = f" (skipped {', '.join(skipped)}: failed here before)" if skipped else ""
            rationale = (
                f"{situation.state.reason}; ladder rung {situation.ladder.index(rung) + 1} "
                f"of {len(situation.ladder)}: {rung}{note}"
            )
            return Proposal(rung, self.confidence, rationale, planner=self.name)
        tried = ", ".join(situation.tried) or "nothing"
        return Proposal(
            ESCALATE_ACTION,
            1.0,
            f"ladder exhausted (tried {tried}; skipped {', '.join(skipped) or 'none'})",
            planner=self.name,
        )
