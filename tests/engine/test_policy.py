"""The policy gate and the rules planner: deterministic rules beat any proposal."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.plan.rules import RulesPlanner
from engine.plan.situation import Situation
from engine.policy.gate import gate
from engine.policy.load import load_policy
from engine.policy.schema import Policy
from engine.types import Attempt, HostHistory, HostState, HostStatus, Proposal, VerdictKind

ROOT = Path(__file__).resolve().parents[2]
NOW = 10_000.0


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(ROOT / "policies" / "lab.yaml", playbook_dir=ROOT / "playbooks")


def situation(
    *,
    status: HostStatus = HostStatus.HIGH_CPU,
    tried: tuple[str, ...] = (),
    attempts: tuple[Attempt, ...] = (),
    busy: int = 0,
    incident_id: int = 7,
) -> Situation:
    state = HostState("web1", status, 95.0 if status is HostStatus.HIGH_CPU else None, 0, "cpu")
    return Situation(
        host="web1",
        state=state,
        incident_id=incident_id,
        tried=tried,
        history=HostHistory("web1", attempts, busy),
        fleet={status: 1},
        actions={"restart_nginx": "restart", "rollback_nginx": "rollback"},
        ladder=("restart_nginx", "rollback_nginx"),
        now=NOW,
    )


def propose(action: str, confidence: float = 0.9) -> Proposal:
    return Proposal(action, confidence, "because", planner="test")


def test_allowed_action_executes(policy: Policy) -> None:
    verdict = gate(propose("restart_nginx"), situation(), policy)
    assert verdict.kind is VerdictKind.EXECUTE
    assert verdict.action == "restart_nginx"
    assert verdict.rule == "allowed"


@pytest.mark.parametrize("status", [HostStatus.UNKNOWN, HostStatus.NORMAL])
def test_never_act_without_data_showing_the_problem(policy: Policy, status: HostStatus) -> None:
    verdict = gate(propose("restart_nginx"), situation(status=status), policy)
    assert verdict.kind is VerdictKind.DO_NOTHING
    assert verdict.rule == "no_data"
    assert verdict.overridden


def test_unlisted_action_is_refused(policy: Policy) -> None:
    verdict = gate(propose("wipe_disk"), situation(), policy)
    assert verdict.kind is VerdictKind.DO_NOTHING
    assert verdict.rule == "whitelist"
    assert "wipe_disk" in verdict.reason


def test_repeating_a_failed_action_escalates(policy: Policy) -> None:
    verdict = gate(propose("restart_nginx"), situation(tried=("restart_nginx",)), policy)
    assert verdict.kind is VerdictKind.ESCALATE
    assert verdict.rule == "failure_memory"


def test_attempts_are_capped_per_incident(policy: Policy) -> None:
    tried = ("restart_nginx", "rollback_nginx")
    verdict = gate(propose("rollback_nginx"), situation(tried=tried), policy)
    assert verdict.kind is VerdictKind.ESCALATE
    assert verdict.rule == "max_attempts"


def test_failure_memory_across_incidents(policy: Policy) -> None:
    failures = tuple(Attempt(i, "restart_nginx", NOW - 600, NOW - 590, False) for i in (1, 2))
    verdict = gate(propose("restart_nginx"), situation(attempts=failures), policy)
    assert verdict.kind is VerdictKind.ESCALATE
    assert verdict.rule == "failure_memory"
    # Failures older than the memory window are forgotten (lab: 1 h).
    old = tuple(Attempt(i, "restart_nginx", NOW - 7200, NOW - 7190, False) for i in (1, 2))
    assert gate(propose("restart_nginx"), situation(attempts=old), policy).rule != "failure_memory"


def test_cooldown_after_another_incidents_run(policy: Policy) -> None:
    recent = (Attempt(3, "restart_nginx", NOW - 20, NOW - 10, True),)
    verdict = gate(propose("restart_nginx"), situation(attempts=recent), policy)
    assert verdict.kind is VerdictKind.WAIT
    assert verdict.rule == "cooldown"
    assert verdict.retry_at == NOW - 10 + policy.remediation.cooldown
    # The same incident's own ladder is not held back by its own runs.
    own = (Attempt(7, "restart_nginx", NOW - 20, NOW - 10, False),)
    verdict = gate(
        propose("rollback_nginx"), situation(attempts=own, tried=("restart_nginx",)), policy
    )
    assert verdict.kind is VerdictKind.EXECUTE


def test_fleet_concurrency_limit(policy: Policy) -> None:
    verdict = gate(propose("restart_nginx"), situation(busy=5), policy)
    assert verdict.kind is VerdictKind.WAIT
    assert verdict.rule == "max_concurrent"


def test_middling_confidence_waits_for_a_human(policy: Policy) -> None:
    verdict = gate(propose("restart_nginx", confidence=0.6), situation(), policy)
    assert verdict.kind is VerdictKind.AWAIT_APPROVAL
    assert verdict.action == "restart_nginx"
    assert verdict.rule == "approval"


def test_low_confidence_is_not_executed(policy: Policy) -> None:
    verdict = gate(propose("restart_nginx", confidence=0.3), situation(), policy)
    assert verdict.kind is VerdictKind.ESCALATE
    assert verdict.rule == "confidence"


def test_rules_planner_walks_the_ladder_then_escalates() -> None:
    planner = RulesPlanner()
    assert planner.propose(situation()).action == "restart_nginx"
    assert planner.propose(situation(tried=("restart_nginx",))).action == "rollback_nginx"
    done = planner.propose(situation(tried=("restart_nginx", "rollback_nginx")))
    assert done.action == "escalate"
    assert "ladder exhausted" in done.rationale


def test_rules_planner_skips_what_keeps_failing_here() -> None:
    failures = tuple(Attempt(i, "restart_nginx", NOW - 60, NOW - 50, False) for i in (1, 2))
    proposal = RulesPlanner().propose(situation(attempts=failures))
    assert proposal.action == "rollback_nginx"
    assert "skipped restart_nginx" in proposal.rationale


ACTIONS = st.sampled_from(
    ["restart_nginx", "rollback_nginx", "wipe_disk", "escalate", "", "x" * 300]
)
ATTEMPTS = st.builds(
    Attempt,
    incident_id=st.integers(1, 9),
    action=ACTIONS,
    started_at=st.floats(NOW - 90_000, NOW),
    ended_at=st.one_of(st.none(), st.floats(NOW - 90_000, NOW)),
    succeeded=st.one_of(st.none(), st.booleans()),
)


@settings(max_examples=300, deadline=None)
@given(
    action=ACTIONS,
    confidence=st.one_of(st.floats(-1, 2), st.just(float("nan"))),
    status=st.sampled_from(list(HostStatus)),
    tried=st.lists(st.sampled_from(["restart_nginx", "rollback_nginx"]), max_size=3),
    attempts=st.lists(ATTEMPTS, max_size=6),
    busy=st.integers(0, 10),
)
def test_property_execute_only_within_policy(
    policy: Policy,
    action: str,
    confidence: float,
    status: HostStatus,
    tried: list[str],
    attempts: list[Attempt],
    busy: int,
) -> None:
    sit = situation(status=status, tried=tuple(tried), attempts=tuple(attempts), busy=busy)
    verdict = gate(Proposal(action, confidence, "r"), sit, policy)
    if verdict.kind not in (VerdictKind.EXECUTE, VerdictKind.AWAIT_APPROVAL):
        return
    rem = policy.remediation
    assert verdict.action in policy.actions
    assert status is HostStatus.HIGH_CPU
    assert len(tried) < rem.max_attempts
    assert verdict.action not in tried
    assert busy < rem.max_concurrent
    if verdict.kind is VerdictKind.EXECUTE:
        assert confidence >= rem.auto_execute_confidence
    else:
        assert rem.approval_confidence <= confidence < rem.auto_execute_confidence
    for attempt in attempts:
        if attempt.incident_id != sit.incident_id and attempt.ended_at is not None:
            assert attempt.ended_at + rem.cooldown <= NOW
