"""Advance: what an incident needs at this tick, from its phase and its host's fresh state.

Close it when the host recovered, hold it while there is no data, verify a finished run
on data newer than the run, or ask for a plan when it may act again. Pure: the answer is
a list of steps (engine/incident/steps.py) for the loop to carry out.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.incident.life import IncidentStatus, Phase, Track
from engine.incident.steps import Close, Escalate, Note, Plan, RecordVerification, Reopen, Step
from engine.policy.schema import SignalRule
from engine.signals import signal_kind
from engine.types import HostState, HostStatus, RunResult, Sample, Verification
from engine.verify import check_recovery, unverifiable


def recovered(state: HostState, rule: SignalRule) -> bool:
    """Below the clear threshold now (not just "no longer sustained high")."""
    return (
        state.status is HostStatus.NORMAL and state.value is not None and state.value < rule.clear
    )


def advance(
    track: Track, state: HostState, samples: Sequence[Sample], now: float, rule: SignalRule
) -> list[Step]:
    """The steps an incident needs now (none while a plan or a run is under way)."""
    if track.phase in (Phase.RUNNING, Phase.PLANNING, Phase.AWAITING_APPROVAL, Phase.CLOSED):
        return []  # the run, the planner or the human answers; approvals are decide's
    if track.phase is Phase.ESCALATED:
        fresh = not track.tried or _since_run(track, state, samples, now, rule) is not None
        if state.status is HostStatus.NORMAL and fresh:
            message = f"host recovered after escalation: {state.reason}"
            return [Close(track.final_status, "recovered", message, state.value)]
        return []
    if track.phase is Phase.VERIFYING:
        return verify(track, state, samples, now, rule)
    if state.status is HostStatus.NORMAL:
        if not recovered(state, rule):
            return []  # not sustained high, but not below clear either: keep watching
        if not track.tried:
            before = "any action"
            if track.interrupted:  # its effect is unknown: say so rather than guess
                before = f"any complete action ({', '.join(track.interrupted)} was cut off)"
            message = f"recovered before {before}: {state.reason}"
            return [Close(IncidentStatus.RESOLVED, "resolved", message, state.value)]
        check = _since_run(track, state, samples, now, rule)
        if check is None:
            return []  # the run's own samples prove nothing: wait for fresh ones
        message = f"recovered after remediation: {check.reason.removeprefix('recovered: ')}"
        return [Close(IncidentStatus.RESOLVED, "resolved", message, check.value)]
    if state.status is HostStatus.UNKNOWN:
        if track.noted_unknown:
            return []
        track.noted_unknown = True
        return [Note("holding", f"no action without data: {state.reason}")]
    track.noted_unknown = False
    return [Plan()] if now >= track.retry_at else []


def _since_run(
    track: Track, state: HostState, samples: Sequence[Sample], now: float, rule: SignalRule
) -> Verification | None:
    """After any run (even one that failed or timed out), a close needs the same proof as a
    verification: samples from after the run's settle time, below clear. None: not yet."""
    check = _fresh_check(track, state, samples, now, rule)
    return check if check is not None and check.recovered else None


def _fresh_check(
    track: Track, state: HostState, samples: Sequence[Sample], now: float, rule: SignalRule
) -> Verification | None:
    """The verification of the track's last run on this tick's samples (None: not yet)."""
    kind = signal_kind(track.kind)
    return check_recovery(
        state,
        samples,
        clean_from=track.run_ended + rule.step,
        not_before=track.verify_after,
        clear=rule.clear,
        now=now,
        measure=kind.measure,
        unit=kind.unit,
    )


def verify(
    track: Track, state: HostState, samples: Sequence[Sample], now: float, rule: SignalRule
) -> list[Step]:
    """Judge a finished run on fresh data: resolve, decide again, or fail to a human."""
    kind = signal_kind(track.kind)
    check = _fresh_check(track, state, samples, now, rule)
    if check is None and now < track.verify_deadline:
        return []
    if check is None:
        check = unverifiable(track.host, now=now, waited=now - track.verify_after)
    steps: list[Step] = [RecordVerification(check)] if track.decision_id is not None else []
    if check.recovered:
        steps.append(Close(IncidentStatus.RESOLVED, "resolved", check.reason, check.value))
    elif check.recovered is None:
        steps.append(Escalate(f"{check.reason}; a human must look", IncidentStatus.FAILED))
    else:
        steps.append(Reopen("not_recovered", check.reason))
        if state.status is kind.status and now >= track.retry_at:
            steps.append(Plan())  # still high: the next rung need not wait for another tick
    return steps


def after_run(
    track: Track,
    result: RunResult,
    action: str,
    *,
    settle: float,
    verify_timeout: float,
) -> list[Step]:
    """A run ended: verify it once fresh data comes if it worked on this host, else decide again."""
    track.tried.append(action)
    track.run_ended = result.ended_at
    track.verify_after = result.ended_at + settle  # any later close reads data from after it
    if result.unreachable(track.host):
        # Nothing ran there, and no other rung would reach it either: a human must look.
        why = result.host_errors.get(track.host) or f"unreachable (run {result.status})"
        return [
            Escalate(
                f"{action} could not reach {track.host}: {why}; the ladder stops here",
                IncidentStatus.FAILED,
            )
        ]
    if result.status == "canceled":
        # A person stopped it (engine/record/run_cancel.py): its effect is unknown, and the
        # engine does not run the ladder again behind their back.
        why = result.error or "canceled"
        return [Escalate(f"{action} on {track.host} stopped: {why}; not retried, a human has it")]
    if result.host_succeeded(track.host):
        track.move(Phase.VERIFYING)
        track.verify_deadline = track.verify_after + verify_timeout
        return []
    detail = result.host_errors.get(track.host)
    message = (
        f"{action} did not complete on {track.host} ({result.status}"
        f"{': ' + detail if detail else ''}); deciding again"
    )
    return [Reopen("run_failed", message)]
