"""Policy: the gate that turns a proposal into a verdict, with the rule that decided.

Pure and deterministic. The order of the checks is the order of authority:
data first, then holds (maintenance windows, flapping), then the whitelist, then the
incident's and the host's history, then the action's trust level (engine/policy/trust.py),
then fleet-wide limits, and only then the planner's confidence.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import replace

from engine.plan.situation import Situation, recent_failures
from engine.policy.schema import Policy
from engine.policy.suppress import flapping, suppression
from engine.policy.trust import TrustLevel
from engine.signals import signal_kind
from engine.types import (
    DO_NOTHING_ACTION,
    ESCALATE_ACTION,
    Proposal,
    Verdict,
    VerdictKind,
)

HUMAN_PLANNER = "human"  # a human's approval, as engine/incident/decide.py proposes it


def _escalate(reason: str, rule: str, *, overridden: bool) -> Verdict:
    return Verdict(VerdictKind.ESCALATE, ESCALATE_ACTION, reason, rule, overridden=overridden)


def gate(
    proposal: Proposal, situation: Situation, policy: Policy, *, groups: Collection[str] = ()
) -> Verdict:
    """Decide what may happen for this proposal; every refusal carries its reason.
    ``groups``: the host's inventory groups, for the trust level's group overrides."""
    rem = policy.remediation
    action = proposal.action
    if situation.state.status is not signal_kind(situation.kind).status:
        return Verdict(
            VerdictKind.DO_NOTHING,
            None,
            f"host is {situation.state.status}: never act without fresh data showing the problem",
            "no_data",
            overridden=action != DO_NOTHING_ACTION,
        )
    # A hold (maintenance, a flapping take-out) beats the planner, escalations included.
    held = suppression(situation.holds, situation.now)
    if held is not None:
        return replace(held, overridden=action != DO_NOTHING_ACTION)
    if action == ESCALATE_ACTION:
        return _escalate(
            f"planner asked to escalate: {proposal.rationale}", "planner", overridden=False
        )
    if action == DO_NOTHING_ACTION:
        return Verdict(VerdictKind.DO_NOTHING, None, "planner proposed no action", "planner")
    if action not in policy.actions:
        return Verdict(
            VerdictKind.DO_NOTHING,
            None,
            f"{action!r} is not a whitelisted action",
            "whitelist",
            overridden=True,
        )
    escalation = _from_history(action, situation, policy)
    if escalation is not None:
        return escalation
    held_back = _from_trust(proposal, policy.trust.level(action, groups))
    if held_back is not None:
        return held_back
    cooldown_until = _cooldown_until(situation, rem.cooldown)
    if cooldown_until is not None and situation.now < cooldown_until:
        return Verdict(
            VerdictKind.WAIT,
            None,
            f"host cooldown: last remediation ended less than {rem.cooldown:g}s ago",
            "cooldown",
            overridden=True,
            retry_at=cooldown_until,
        )
    if situation.history.remediating_hosts >= rem.max_concurrent:
        return Verdict(
            VerdictKind.WAIT,
            None,
            f"{situation.history.remediating_hosts} hosts already being remediated "
            f"(max_concurrent {rem.max_concurrent})",
            "max_concurrent",
            overridden=True,
        )
    # Written as 'not >=' so that a NaN confidence (from a sloppy planner) never executes.
    if not proposal.confidence >= rem.auto_execute_confidence:
        if proposal.confidence >= rem.approval_confidence:
            return Verdict(
                VerdictKind.AWAIT_APPROVAL,
                action,
                f"confidence {proposal.confidence:.2f} is below auto_execute_confidence "
                f"{rem.auto_execute_confidence:.2f}: {action} waits for a human's approval",
                "approval",
            )
        reason = (
            f"confidence {proposal.confidence:.2f} below approval_confidence "
            f"{rem.approval_confidence:.2f}"
        )
        if rem.low_confidence == "do_nothing":
            return Verdict(VerdictKind.DO_NOTHING, None, reason, "confidence", overridden=True)
        return _escalate(reason, "confidence", overridden=True)
    return Verdict(
        VerdictKind.EXECUTE,
        action,
        f"{action} is whitelisted and allowed (confidence {proposal.confidence:.2f})",
        "allowed",
    )


def _from_trust(proposal: Proposal, level: TrustLevel) -> Verdict | None:
    """What the action's trust level holds back: observe never runs, propose asks a human
    whatever the confidence (an approval is that human); None when it may go on (auto)."""
    action = proposal.action
    if level is TrustLevel.OBSERVE:
        return Verdict(
            VerdictKind.DO_NOTHING,
            None,
            f"{action} is at trust level observe here: detected and recorded, never run",
            "trust_observe",
            overridden=True,
        )
    if level is TrustLevel.PROPOSE and proposal.planner != HUMAN_PLANNER:
        return Verdict(
            VerdictKind.AWAIT_APPROVAL,
            action,
            f"{action} is at trust level propose here: it waits for a human's approval "
            f"(confidence {proposal.confidence:.2f})",
            "trust_propose",
        )
    return None


def _from_history(action: str, situation: Situation, policy: Policy) -> Verdict | None:
    """The escalation the host's and the incident's past call for: flapping, too many
    attempts, or an action that already failed; None when the past allows the action."""
    rem = policy.remediation
    flapped = flapping(situation.history, situation.holds, rem.flapping, situation.now)
    if flapped is not None:
        return flapped
    if len(situation.tried) >= rem.max_attempts:
        return _escalate(
            f"{len(situation.tried)} attempts made, the policy allows "
            f"{rem.max_attempts} per incident",
            "max_attempts",
            overridden=True,
        )
    if action in situation.tried:
        return _escalate(
            f"{action} already ran in this incident without curing it",
            "failure_memory",
            overridden=True,
        )
    since = situation.now - rem.failure_memory.window
    failures = recent_failures(situation.history, action, since=since)
    if failures >= rem.failure_memory.max_failures:
        return _escalate(
            f"{action} failed {failures} times on this host recently",
            "failure_memory",
            overridden=True,
        )
    return None


def _cooldown_until(situation: Situation, cooldown: float) -> float | None:
    """End of the cooldown started by the last remediation of another incident."""
    ends = [
        attempt.ended_at
        for attempt in situation.history.attempts
        if attempt.incident_id != situation.incident_id and attempt.ended_at is not None
    ]
    return max(ends) + cooldown if ends else None
