"""Decide: plan off the tick, pass every proposal through the policy gate, record the
decision, and hold actions that need a human until they are approved, rejected or expire.

The engine (engine/loop.py) owns the incidents; this module only moves a track from
"deciding" to "run this", "wait for a human", "escalate" or "wait".
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import replace

from engine.incident.life import Pending, Phase, Track
from engine.inventory import Inventory
from engine.plan.rules import Planner, Situation
from engine.policy.file import Policy
from engine.policy.gate import gate
from engine.record.recorder import Recorder
from engine.types import (
    Approval,
    ApprovalStatus,
    HostState,
    HostStatus,
    IncidentStatus,
    Proposal,
    Sample,
    Verdict,
    VerdictKind,
)

log = logging.getLogger("autosre.engine")
Escalate = Callable[[Track, str, float], None]
Close = Callable[..., None]


class Decider:
    """Planning, the policy gate and approvals for the engine's tracks."""

    def __init__(
        self,
        *,
        policy: Policy,
        inventory: Inventory,
        planner: Planner,
        recorder: Recorder,
        escalate: Escalate,
        close: Close,
        recovered: Callable[[HostState], bool],
    ) -> None:
        self.policy = policy
        self.inventory = inventory
        self.planner = planner
        self.recorder = recorder
        self.escalate = escalate  # engine callbacks: the engine owns incident closing
        self.close = close
        self.recovered = recovered
        self._planning = ThreadPoolExecutor(max_workers=4, thread_name_prefix="autosre-plan")

    def planning(self, tracks: Mapping[str, Track]) -> bool:
        """True while some proposal is still being made."""
        return any(t.phase is Phase.PLANNING for t in tracks.values())

    def shutdown(self) -> None:
        """Stop planning; proposals still being made are dropped."""
        self._planning.shutdown(wait=False, cancel_futures=True)

    def _situation(
        self,
        track: Track,
        state: HostState,
        samples: Sequence[Sample],
        now: float,
        fleet: Counter[HostStatus],
    ) -> Situation:
        memory = self.policy.remediation.failure_memory.window
        history = self.recorder.host_history(track.host, since=now - max(memory, 86400.0))
        host = self.inventory.hosts.get(track.host)
        return Situation(
            host=track.host,
            state=state,
            incident_id=track.incident_id,
            tried=tuple(track.tried),
            history=history,
            fleet=dict(fleet),
            actions={n: a.description for n, a in self.policy.actions.items()},
            ladder=tuple(self.policy.remediation.ladder),
            now=now,
            samples=tuple(samples),
            labels=dict(host.labels) if host else {},
        )

    def plan(
        self,
        track: Track,
        state: HostState,
        samples: Sequence[Sample],
        now: float,
        fleet: Counter[HostStatus],
    ) -> None:
        """Start planning for a track off the tick."""
        situation = self._situation(track, state, samples, now, fleet)
        track.phase = Phase.PLANNING
        track.situation = situation
        track.plan = self._planning.submit(self.planner.propose, situation)

    def collect_plans(
        self,
        tracks: Mapping[str, Track],
        states: Mapping[str, HostState],
        now: float,
        pending: dict[str, list[Pending]],
        *,
        wait_for: float = 0.0,
    ) -> None:
        planning = [t for t in tracks.values() if t.phase is Phase.PLANNING and t.plan]
        if planning and wait_for > 0:
            wait([t.plan for t in planning if t.plan], timeout=wait_for)
        for track in planning:
            if track.plan is None or not track.plan.done() or track.situation is None:
                continue
            try:
                proposal = track.plan.result()
            except Exception as exc:  # a planner bug falls back like any planner failure
                rules = self._rules_fallback(track.situation)
                proposal = replace(rules, fallback=f"planner failed: {exc}")
            track.plan = None
            track.phase = Phase.DECIDING
            # The gate judges the host as it is now, not as it was when planning began.
            situation = replace(track.situation, state=states[track.host])
            self._decide(track, proposal, situation, now, pending)

    def _rules_fallback(self, situation: Situation) -> Proposal:
        fallback = getattr(self.planner, "fallback", self.planner)
        proposal: Proposal = fallback.propose(situation)
        return proposal

    def _decide(
        self,
        track: Track,
        proposal: Proposal,
        situation: Situation,
        now: float,
        pending: dict[str, list[Pending]],
    ) -> None:
        verdict = gate(proposal, situation, self.policy)
        key = (verdict.kind.value, verdict.rule)
        if verdict.kind in (VerdictKind.WAIT, VerdictKind.DO_NOTHING) and key == track.last_verdict:
            track.retry_at = verdict.retry_at or now + 30.0
            return
        track.last_verdict = key
        decision_id = self._record(track, proposal, verdict, now)
        if verdict.kind is VerdictKind.EXECUTE and verdict.action is not None:
            track.decision_id = decision_id
            pending[verdict.action].append(Pending(track.host, track, decision_id))
        elif verdict.kind is VerdictKind.AWAIT_APPROVAL and verdict.action is not None:
            expires = now + self.policy.remediation.approval_timeout
            track.approval_id = self.recorder.request_approval(
                track.incident_id,
                decision_id,
                track.host,
                verdict.action,
                proposal.rationale,
                at=now,
                expires_at=expires,
            )
            track.phase = Phase.AWAITING_APPROVAL
        elif verdict.kind is VerdictKind.ESCALATE:
            self.escalate(track, verdict.reason, now)
        else:
            track.retry_at = verdict.retry_at or now + 30.0

    def _record(self, track: Track, proposal: Proposal, verdict: Verdict, now: float) -> int:
        decision_id = self.recorder.record_decision(
            track.incident_id, track.host, proposal, verdict, now
        )
        via = f" (fallback: {proposal.fallback})" if proposal.fallback else ""
        log.info(
            "%s: incident %d: %s proposed %s (%.2f)%s; policy: %s - %s",
            track.host,
            track.incident_id,
            proposal.planner,
            proposal.action,
            proposal.confidence,
            via,
            verdict.kind,
            verdict.reason,
        )
        return decision_id

    def poll_approvals(self, tracks: Mapping[str, Track]) -> dict[int, Approval]:
        """The engine's pending approvals, in one query."""
        ids = [
            t.approval_id
            for t in tracks.values()
            if t.phase is Phase.AWAITING_APPROVAL and t.approval_id is not None
        ]
        return self.recorder.approvals(ids) if ids else {}

    def on_approval(
        self,
        track: Track,
        state: HostState,
        samples: Sequence[Sample],
        approvals: dict[int, Approval],
        now: float,
        fleet: Counter[HostStatus],
        pending: dict[str, list[Pending]],
    ) -> None:
        """Move an incident on once its approval is decided, expired or moot."""
        approval = approvals.get(track.approval_id or -1)
        if approval is None:
            self.escalate(track, "the pending approval disappeared from the store", now)
            return
        if approval.status is ApprovalStatus.PENDING and self.recovered(state):
            self.recorder.expire_approval(approval.id, at=now)
            self.close(
                track,
                IncidentStatus.RESOLVED,
                "resolved",
                f"recovered while awaiting approval: {state.reason}",
                now=now,
                value=state.value,
            )
            return
        if approval.status is ApprovalStatus.PENDING and now < approval.expires_at:
            return
        track.approval_id = None
        if approval.status is ApprovalStatus.APPROVED:
            track.phase = Phase.DECIDING
            human = Proposal(
                approval.action,
                1.0,
                f"approved by {approval.decided_by}: {approval.note or 'no note'}",
                planner="human",
            )
            situation = self._situation(track, state, samples, now, fleet)
            self._decide(track, human, situation, now, pending)  # overrides still apply
        elif approval.status is ApprovalStatus.REJECTED:
            self.escalate(
                track,
                f"{approval.action} rejected by {approval.decided_by}: "
                f"{approval.note or 'no note'}",
                now,
            )
        else:
            if approval.status is ApprovalStatus.PENDING:
                self.recorder.expire_approval(approval.id, at=now)
            self.escalate(track, f"approval for {approval.action} expired unanswered", now)
