"""The rules planner: the default, and the fallback of every other planner.

It walks the incident's ladder (from the policy's section for its signal kind): the
next rung not yet tried in this incident and not in the host's failure memory, else
escalate.
"""

from __future__ import annotations

import re

from engine.plan.situation import Situation, recent_failures
from engine.types import ESCALATE_ACTION, Proposal

# "skipped restart_nginx (why), rollback_nginx (why)": each rung with the reason it was passed.
SKIPPED = re.compile(r"skipped ((?:[a-z][a-z0-9_]*(?: \([^()]*\))?(?:, )?)+)")
SKIPPED_RUNG = re.compile(r"([a-z][a-z0-9_]*)(?: \(([^()]*)\))?")


def span(seconds: float) -> str:
    """A window as people say it: "24 h", "30 min", "90 s"."""
    n = round(seconds)
    if n and n % 3600 == 0:
        return f"{n // 3600} h"
    return f"{n // 60} min" if n and n % 60 == 0 else f"{n} s"


def skipped_rungs(rationale: str) -> list[tuple[str, str | None]]:
    """The rungs a rules rationale says were skipped, each with its reason (None in a
    rationale recorded before reasons were)."""
    found = list(SKIPPED.finditer(rationale))  # the last: the state's reason comes first
    if not found:
        return []
    rungs = SKIPPED_RUNG.findall(found[-1].group(1))
    return [(rung, why or None) for rung, why in rungs if (rung, why) != ("none", "")]


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
        skipped: list[str] = []  # each rung with why: the page lists them (skipped_rungs)
        for rung in situation.ladder:
            if rung in situation.tried:
                continue
            failures = recent_failures(situation.history, rung, since=since)
            if failures >= self.max_failures:
                skipped.append(
                    f"{rung} (failure memory: failed {failures} times on this host "
                    f"in the last {span(self.memory_window)})"
                )
                continue
            note = f" (skipped {', '.join(skipped)})" if skipped else ""
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
