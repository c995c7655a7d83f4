"""The incident's life: its tables walked whole, and the steps deciding and advancing return.

Pure: no store, no clock but the numbers given.
"""

from __future__ import annotations

from collections import Counter

import pytest

from engine.errors import IllegalMoveError
from engine.incident.advance import advance, after_run
from engine.incident.decide import Decider
from engine.incident.life import (
    ACTIVE_STATUSES,
    CLOSED_STATUSES,
    PHASE_MOVES,
    PHASE_STATUS,
    STATUS_MOVES,
    IncidentStatus,
    Phase,
    Track,
    check_status_move,
    resume,
)
from engine.incident.steps import (
    Close,
    Escalate,
    ExpireApproval,
    Judge,
    Note,
    Plan,
    RecordVerification,
    Reopen,
)
from engine.policy.schema import SignalRule
from engine.signals import HIGH_CPU
from engine.types import (
    Approval,
    ApprovalStatus,
    HostRunStats,
    HostState,
    HostStatus,
    RunResult,
    Sample,
)

RULE = SignalRule.model_validate(
    {**HIGH_CPU.defaults, "trigger": 80, "clear": 50, "window": 1, "step": 1, "ladder": ["fix"]}
)
NOW = 1_000_000.0


def reachable(start: Phase) -> set[Phase]:
    seen, todo = {start}, [start]
    while todo:
        for nxt in PHASE_MOVES[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def test_every_phase_is_reachable_from_detection_and_every_one_can_end() -> None:
    assert reachable(Phase.DECIDING) == set(Phase)
    for phase in Phase:
        assert Phase.CLOSED in reachable(phase), phase
    assert PHASE_MOVES[Phase.CLOSED] == frozenset()


def test_each_phase_move_is_a_status_move_the_store_allows() -> None:
    for phase, targets in PHASE_MOVES.items():
        for target in targets:
            assert any(
                after == before or after in STATUS_MOVES[before]
                for before in PHASE_STATUS[phase]
                for after in PHASE_STATUS[target]
            ), f"{phase} -> {target} has no stored status move"


def test_status_table_covers_every_status_and_resolved_is_final() -> None:
    assert set(STATUS_MOVES) == set(IncidentStatus)
    assert set(ACTIVE_STATUSES) | set(CLOSED_STATUSES) == set(IncidentStatus)
    assert STATUS_MOVES[IncidentStatus.RESOLVED] == frozenset()
    for status in ACTIVE_STATUSES:
        assert set(CLOSED_STATUSES) <= STATUS_MOVES[status], status
    with pytest.raises(IllegalMoveError, match="from resolved to open"):
        check_status_move("resolved", IncidentStatus.OPEN)
    check_status_move("escalated", IncidentStatus.ESCALATED)  # closing an escalated one


@pytest.mark.parametrize("start", list(Phase))
def test_a_track_moves_only_along_the_table(start: Phase) -> None:
    for target in Phase:
        track = Track(1, "web1", phase=start)
        if target in PHASE_MOVES[start]:
            track.move(target)
            assert track.phase is target
        else:
            with pytest.raises(IllegalMoveError):
                track.move(target)
            assert track.phase is start


@pytest.mark.parametrize(
    ("status", "approval", "phase"),
    [
        ("open", None, Phase.DECIDING),
        ("awaiting_approval", 7, Phase.AWAITING_APPROVAL),
        ("awaiting_approval", None, Phase.DECIDING),  # the approval is gone: decide again
        ("escalated", None, Phase.ESCALATED),
        ("failed", None, Phase.ESCALATED),
    ],
)
def test_resume_puts_a_stored_incident_back_in_its_phase(
    status: str, approval: int | None, phase: Phase
) -> None:
    track = resume(3, "web1", "high_cpu", status, ["fix"], approval)
    assert (track.phase, track.approval_id, track.tried) == (phase, approval, ["fix"])


def state(
    status: HostStatus, value: float | None, reason: str = "r", sample_ts: float = NOW - 1
) -> HostState:
    return HostState("web1", status, value, NOW - 30, reason, sample_ts)


def test_advance_closes_a_recovered_host_and_holds_one_without_data_once() -> None:
    track = Track(1, "web1")
    assert advance(track, state(HostStatus.UNKNOWN, None), (), NOW, RULE) == [
        Note("holding", "no action without data: r")
    ]
    assert advance(track, state(HostStatus.UNKNOWN, None), (), NOW, RULE) == []
    assert advance(track, state(HostStatus.NORMAL, 55.0), (), NOW, RULE) == []  # not below clear
    (close,) = advance(track, state(HostStatus.NORMAL, 20.0, "cpu 20%"), (), NOW, RULE)
    assert close == Close(
        IncidentStatus.RESOLVED, "resolved", "recovered before any action: cpu 20%", 20.0
    )


def test_advance_plans_only_when_the_retry_time_has_come() -> None:
    track = Track(1, "web1", retry_at=NOW + 10)
    assert advance(track, state(HostStatus.HIGH_CPU, 95.0), (), NOW, RULE) == []
    assert advance(track, state(HostStatus.HIGH_CPU, 95.0), (), NOW + 10, RULE) == [Plan()]


def test_an_escalated_incident_closes_with_its_own_status_when_the_host_recovers() -> None:
    track = Track(1, "web1", phase=Phase.ESCALATED, final_status=IncidentStatus.FAILED)
    assert advance(track, state(HostStatus.HIGH_CPU, 95.0), (), NOW, RULE) == []
    (close,) = advance(track, state(HostStatus.NORMAL, 20.0, "ok"), (), NOW, RULE)
    assert close.status is IncidentStatus.FAILED
    assert close.kind == "recovered"


def result(status: str, ok: bool, ended: float) -> RunResult:
    stats = {"web1": HostRunStats(ok=1) if ok else HostRunStats(failures=1)}
    return RunResult("r1", status, 0 if ok else 2, "/tmp/r1", ended - 3, ended, stats)


def test_a_run_that_worked_is_verified_on_fresh_data_only() -> None:
    track = Track(1, "web1", phase=Phase.RUNNING, decision_id=9)
    assert (
        after_run(track, result("successful", True, NOW), "fix", settle=2, verify_timeout=5) == []
    )
    assert track.phase is Phase.VERIFYING and track.tried == ["fix"]
    old = tuple(Sample("web1", NOW - 5 + i, 20.0) for i in range(5))  # all before the run end
    assert advance(track, state(HostStatus.NORMAL, 20.0), old, NOW + 3, RULE) == []
    steps = advance(track, state(HostStatus.NORMAL, 20.0), old, NOW + 8, RULE)  # past deadline
    assert isinstance(steps[0], RecordVerification) and steps[0].check.recovered is None
    assert steps[1] == Escalate(
        f"{steps[0].check.reason}; a human must look", IncidentStatus.FAILED
    )


def test_a_run_that_did_not_cure_reopens_the_incident() -> None:
    track = Track(1, "web1", phase=Phase.RUNNING, decision_id=9)
    after_run(track, result("successful", True, NOW), "fix", settle=2, verify_timeout=5)
    fresh = tuple(Sample("web1", NOW + 2 + i, 95.0) for i in range(3))
    high = state(HostStatus.HIGH_CPU, 95.0, sample_ts=NOW + 4)
    steps = advance(track, high, fresh, NOW + 5, RULE)
    assert isinstance(steps[0], RecordVerification) and steps[0].check.recovered is False
    assert isinstance(steps[1], Reopen) and steps[1].kind == "not_recovered"
    assert steps[2:] == [Plan()]  # still high: the next rung is planned in the same tick


def test_a_failed_run_reopens_without_verifying() -> None:
    track = Track(1, "web1", phase=Phase.RUNNING, decision_id=9)
    (step,) = after_run(track, result("failed", False, NOW), "fix", settle=2, verify_timeout=5)
    assert step == Reopen("run_failed", "fix did not complete on web1 (failed); deciding again")
    assert track.phase is Phase.RUNNING  # the loop moves it when it writes the reopening


def approval(status: ApprovalStatus, *, expires: float = NOW + 60) -> Approval:
    return Approval(7, 1, 9, "web1", "fix", status, NOW - 60, expires, decided_by="ann", note="go")


def test_approvals_become_steps() -> None:
    high = state(HostStatus.HIGH_CPU, 95.0)

    def steps(found: Approval | None, *, recovered: bool = False, at: float = NOW) -> list:
        track = Track(1, "web1", phase=Phase.AWAITING_APPROVAL, approval_id=7)
        return Decider.on_approval(track, found, high, recovered=recovered, now=at)

    assert steps(approval(ApprovalStatus.PENDING)) == []
    assert steps(None) == [Escalate("the pending approval disappeared from the store")]
    recovered = steps(approval(ApprovalStatus.PENDING), recovered=True)
    assert recovered[0] == ExpireApproval(7) and isinstance(recovered[1], Close)
    (judge,) = steps(approval(ApprovalStatus.APPROVED))
    assert isinstance(judge, Judge) and judge.proposal.planner == "human"
    assert steps(approval(ApprovalStatus.REJECTED)) == [Escalate("fix rejected by ann: go")]
    unanswered = Escalate("approval for fix expired unanswered")
    assert steps(approval(ApprovalStatus.PENDING), at=NOW + 61) == [ExpireApproval(7), unanswered]
    assert steps(approval(ApprovalStatus.EXPIRED)) == [unanswered]
    assert Counter(type(s).__name__ for s in recovered) == {"ExpireApproval": 1, "Close": 1}
