"""The rules planner: the default, and the fallback of every other planner.

It walks the incident's ladder (from the policy's section for its signal kind): the
next rung not yet tried in this incident and not in the host's failure memory, else
escalate.
"""

from __future__ import annotations

from engine.plan.situation import Situation, recent_failures
from engine.types import ESCALATE_ACTION, Proposal


class RulesPlanner:
    """Walks the policy's remediation ladder: the next rung not yet tried, else escalate."""

    name = "rules"

    def __init__(
        self, *, confidence: float = 0.9, memory_window: float = 86400.0, max_failures: int = 2
    ) -> None:
        self.confidence = confidence
        self.memory_window = memory_window
        self.max_failures = max_failures

    def quick(self, situation: Situation) -> Proposal:
        """Always answers at once: the same as propose()."""
        return self.propose(situation)

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
