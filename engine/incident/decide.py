"""Decide: plan off the tick, pass every proposal through the policy gate, and say what
happens next (run, wait, ask a human, escalate) as steps the loop carries out.

Approvals are part of deciding: a decided approval becomes the next steps too. Nothing
here writes to the store or calls back into the loop. After the gate says execute (or
ask a human), the policy's rate limits (engine/policy/rate_limits.py) may escalate instead.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Collection, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import replace

from engine.incident.life import IncidentStatus, Phase, Track
from engine.incident.steps import (
    AskHuman,
    Close,
    Decided,
    Escalate,
    ExpireApproval,
    Judge,
    Retry,
    Run,
    Step,
    TakeOut,
)
from engine.inventory import Inventory
from engine.plan.situation import Planner, Situation
from engine.policy.gate import gate
from engine.policy.rate_limits import RULE as RATE_LIMIT_RULE
from engine.policy.rate_limits import Accepted, RunMark, first_hit, longest
from engine.policy.schema import Policy
from engine.policy.suppress import FLAPPING_RULE
from engine.types import (
    ESCALATE_ACTION,
    Approval,
    ApprovalStatus,
    HostHistory,
    HostHolds,
    HostState,
    HostStatus,
    Proposal,
    Sample,
    Verdict,
    VerdictKind,
)

History = Callable[[str, float], HostHistory]  # (host, since) -> the host's past
# (host, its inventory groups, now) -> its maintenance windows and flapping take-out
Holds = Callable[[str, Collection[str], float], HostHolds]
RunMarks = Callable[[float], Sequence[RunMark]]  # (since) -> the counted runs since then
RETRY_AFTER = 30.0  # seconds before deciding again when the gate says "not now"


class Decider:
    """Planning (on a small pool of its own), the policy gate and approvals."""

    def __init__(
        self,
        *,
        policy: Policy,
        inventory: Inventory,
        planner: Planner,
        history: History,
        holds: Holds,
        workers: int = 4,
        run_marks: RunMarks | None = None,
    ) -> None:
        self.policy = policy
        self.inventory = inventory
        self.planner = planner
        self.history = history
        self.holds = holds
        self.run_marks = run_marks  # None: rate limits are not counted
        self.accepted = Accepted()
        self._planning = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="autosre-plan")

    def shutdown(self) -> None:
        """Stop planning; proposals still being made are dropped."""
        self._planning.shutdown(wait=False, cancel_futures=True)

    def situation(
        self,
        track: Track,
        state: HostState,
        samples: Sequence[Sample],
        now: float,
        fleet: Counter[HostStatus],
    ) -> Situation:
        """Everything the planner and the gate may look at for this incident, now."""
        rem = self.policy.remediation
        memory = max(rem.failure_memory.window, rem.flapping.window)
        host = self.inventory.hosts.get(track.host)
        return Situation(
            host=track.host,
            state=state,
            incident_id=track.incident_id,
            tried=tuple(track.tried),
            history=self.history(track.host, now - max(memory, 86400.0)),
            fleet=dict(fleet),
            actions={n: a.description for n, a in self.policy.actions.items()},
            ladder=tuple(self.policy.signal(track.kind).ladder),
            now=now,
            samples=tuple(samples),
            labels=dict(host.labels) if host else {},
            kind=track.kind,
        )

    def plan(self, track: Track, situation: Situation) -> None:
        """Plan for a track: at once when the planner knows without waiting, else off the tick
        (so a slow model never holds up the tick, and what the rules decide is batched)."""
        track.move(Phase.PLANNING)
        track.situation = situation
        try:
            known = self.planner.quick(situation)
        except Exception:  # the pool's path reports planner failures, with the fallback
            known = None
        if known is not None:
            done: Future[Proposal] = Future()
            done.set_result(known)
            track.plan = done
        else:
            track.plan = self._planning.submit(self.planner.propose, situation)

    @staticmethod
    def planning(tracks: Iterable[Track]) -> bool:
        """True while some proposal is still being made."""
        return any(t.phase is Phase.PLANNING for t in tracks)

    def proposals(
        self, tracks: Iterable[Track], *, wait_for: float = 0.0
    ) -> list[tuple[Track, Proposal]]:
        """The proposals made since the last call (waiting up to ``wait_for`` seconds)."""
        planning = [t for t in tracks if t.phase is Phase.PLANNING and t.plan is not None]
        if planning and wait_for > 0:
            wait([t.plan for t in planning if t.plan is not None], timeout=wait_for)
        made = []
        for track in planning:
            if track.plan is None or not track.plan.done() or track.situation is None:
                continue
            try:
                proposal = track.plan.result()
            except Exception as exc:  # a planner bug falls back like any planner failure
                fallback = getattr(self.planner, "fallback", self.planner)
                rules: Proposal = fallback.propose(track.situation)
                proposal = replace(rules, fallback=f"planner failed: {exc}")
            track.plan = None
            track.move(Phase.DECIDING)
            made.append((track, proposal))
        return made

    def judge(
        self, track: Track, proposal: Proposal, situation: Situation, now: float
    ) -> list[Step]:
        """The gate's verdict over a proposal, as the steps that carry it out."""
        # Holds as the store has them now: a window set or ended while planning counts.
        host = self.inventory.hosts.get(track.host)
        groups = host.groups if host else ()
        holds = self.holds(track.host, groups, now)
        verdict = gate(proposal, replace(situation, holds=holds), self.policy, groups=groups)
        if verdict.kind in (VerdictKind.EXECUTE, VerdictKind.AWAIT_APPROVAL):
            verdict = self._rate_limited(verdict, track.host, now)
        retry = Retry(verdict.retry_at or now + RETRY_AFTER)
        key = (verdict.kind.value, verdict.rule)
        if verdict.kind in (VerdictKind.WAIT, VerdictKind.DO_NOTHING) and key == track.last_verdict:
            return [retry]  # the same "not now" again: nothing new to record
        track.last_verdict = key
        decided = Decided(proposal, verdict)
        if verdict.kind is VerdictKind.EXECUTE and verdict.action is not None:
            return [decided, Run(verdict.action)]
        if verdict.kind is VerdictKind.AWAIT_APPROVAL and verdict.action is not None:
            expires = now + self.policy.remediation.approval_timeout
            return [decided, AskHuman(verdict.action, proposal.rationale, expires)]
        if verdict.kind is VerdictKind.ESCALATE and verdict.rule == FLAPPING_RULE:
            return [decided, TakeOut(verdict.reason), Escalate(verdict.reason)]
        if verdict.kind is VerdictKind.ESCALATE:
            return [decided, Escalate(verdict.reason)]
        return [decided, retry]

    def _rate_limited(self, verdict: Verdict, host: str, now: float) -> Verdict:
        """The verdict, or an escalation naming the rate limit one more run would break (no
        human is asked to approve what the limits refuse now; an approved run is checked
        again). An allowed run counts at once: the tick's runs reach the store at its end."""
        limits = self.policy.rate_limits
        if not limits or self.run_marks is None or verdict.action is None:
            return verdict
        # One query per verdict, never cached: a run by hand between two ticks stamped alike
        # (a frozen clock) must still count.
        stored = self.run_marks(now - longest(limits))
        marks = self.accepted.merged(stored, now)
        hit = first_hit(limits, marks, action=verdict.action, hosts=[host], now=now)
        if hit is None:
            if verdict.kind is VerdictKind.EXECUTE:
                self.accepted.add(verdict.action, [host], stored, now)
            return verdict
        return Verdict(
            VerdictKind.ESCALATE, ESCALATE_ACTION, hit.reason, RATE_LIMIT_RULE, overridden=True
        )

    @staticmethod
    def on_approval(
        track: Track, approval: Approval | None, state: HostState, *, recovered: bool, now: float
    ) -> list[Step]:
        """What an incident awaiting approval needs now: nothing, a verdict, or its end."""
        if approval is None:
            return [Escalate("the pending approval disappeared from the store")]
        pending = approval.status is ApprovalStatus.PENDING
        if pending and recovered:
            message = f"recovered while awaiting approval: {state.reason}"
            return [
                ExpireApproval(approval.id),
                Close(IncidentStatus.RESOLVED, "resolved", message, state.value),
            ]
        if pending and now < approval.expires_at:
            return []
        track.approval_id = None
        note = approval.note or "no note"
        if approval.status is ApprovalStatus.APPROVED:
            track.move(Phase.DECIDING)
            human = Proposal(
                approval.action, 1.0, f"approved by {approval.decided_by}: {note}", planner="human"
            )
            return [Judge(human)]  # the gate still applies: overrides beat approvals
        if approval.status is ApprovalStatus.REJECTED:
            return [Escalate(f"{approval.action} rejected by {approval.decided_by}: {note}")]
        expired = Escalate(f"approval for {approval.action} expired unanswered")
        return [ExpireApproval(approval.id), expired] if pending else [expired]
