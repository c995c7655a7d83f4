"""Decision replay: an incident's recorded decision points run again through today's
policy and planner, without acting and without writing, next to what was decided then
(``autosre incidents explain``)."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy.orm import Session, sessionmaker

from engine.decision_eval.build import build_situation
from engine.decision_eval.capture import Recorded, recorded_decisions
from engine.decision_eval.case import CaseError, Scenario
from engine.decision_eval.run import decision_of, plan, rate_limited
from engine.plan.situation import Planner
from engine.policy.gate import gate
from engine.policy.schema import Policy
from engine.types import DO_NOTHING_ACTION, ESCALATE_ACTION, Proposal, Verdict, VerdictKind


@dataclass(frozen=True, slots=True)
class Replay:
    """One recorded decision and what today's planner and policy make of its situation."""

    recorded: Recorded
    proposal: Proposal
    verdict: Verdict

    @property
    def then(self) -> str:
        """What was decided then: an action, escalate or do_nothing."""
        d = self.recorded.decision
        if d.verdict in (VerdictKind.EXECUTE, VerdictKind.AWAIT_APPROVAL) and d.verdict_action:
            return d.verdict_action
        return ESCALATE_ACTION if d.verdict == VerdictKind.ESCALATE else DO_NOTHING_ACTION

    @property
    def now(self) -> str:
        """What would be decided now."""
        return decision_of(self.verdict)

    @property
    def missing(self) -> list[str]:
        """What the record lacked for this replay."""
        return list(self.recorded.scenario.get("missing", []))


def replay(
    sessions: sessionmaker[Session],
    incident_id: int,
    *,
    policy: Policy,
    planner: Planner,
    labels: Mapping[str, str] | None = None,
    groups: Collection[str] | None = None,
) -> list[Replay]:
    """Each decision of the incident replayed with today's policy and planner, oldest first.

    CaseError for an unknown incident, one without decisions, or a kind today's policy
    no longer watches."""
    found = recorded_decisions(
        sessions, incident_id, policy_base="(today's)", labels=labels, groups=groups
    )
    replays = []
    for recorded in found:
        try:
            scenario = Scenario.model_validate(recorded.scenario)
        except ValidationError as exc:
            first = exc.errors()[0]
            raise CaseError(
                f"incident {incident_id}: the record cannot be replayed: {first['msg']}"
            ) from None
        if scenario.kind not in policy.signals:
            raise CaseError(
                f"incident {incident_id}: today's policy no longer watches {scenario.kind}"
            )
        situation = build_situation(scenario, policy, incident_id=incident_id)
        proposal = plan(planner, situation)
        verdict = gate(proposal, situation, policy, groups=tuple(scenario.groups))
        replays.append(Replay(recorded, proposal, rate_limited(verdict, situation, policy)))
    return replays
