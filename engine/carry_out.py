"""Carrying out an incident's steps: the store writes, the page, the planner's pool and the
tick's batch of runs.

The incident modules (engine/incident/) say what happens next; this is the one place
that makes it happen, for the loop. Each transition is written to the store before its
side effect (a page, a run) starts, and the track moves only along its life's tables.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

from engine.escalate import Notifier
from engine.incident.decide import Decider
from engine.incident.life import IncidentStatus, Phase, Track
from engine.incident.steps import (
    AskHuman,
    Close,
    Decided,
    Escalate,
    ExpireApproval,
    Judge,
    Note,
    Plan,
    RecordVerification,
    Reopen,
    Retry,
    Run,
    Step,
    TakeOut,
)
from engine.record.recorder import Recorder
from engine.types import HostState, HostStatus, Proposal, Sample, Verdict

log = logging.getLogger("autosre.engine")

Batch = MutableMapping[str, list[Track]]  # action -> the tracks to run it on this tick


@dataclass(frozen=True, slots=True)
class Seen:
    """One host as this tick saw it, for the steps that need the host's present."""

    state: HostState
    samples: Sequence[Sample]  # oldest first; a held window is not copied
    fleet: Counter[HostStatus]


class StepRunner:
    """Carries out steps for the engine's tracks; the only writer of their outcomes."""

    def __init__(
        self,
        *,
        recorder: Recorder,
        notifier: Notifier,
        decider: Decider,
        tracks: MutableMapping[str, Track],
    ) -> None:
        self.recorder = recorder
        self.notifier = notifier
        self.decider = decider
        self.tracks = tracks

    def run(
        self,
        track: Track,
        steps: list[Step],
        now: float,
        *,
        present: Seen | None = None,
        batch: Batch | None = None,
    ) -> None:
        """Carry out the steps in order (a step that needs the host's present gets it)."""
        decision_id: int | None = None
        for step in steps:
            match step:
                case Plan() | Judge() if present is None:
                    raise ValueError(f"{step} needs what this tick saw of {track.host}")
                case Plan():
                    assert present is not None
                    situation = self.decider.situation(
                        track, present.state, present.samples, now, present.fleet
                    )
                    self.decider.plan(track, situation)
                case Judge(proposal):
                    assert present is not None
                    situation = self.decider.situation(
                        track, present.state, present.samples, now, present.fleet
                    )
                    judged = self.decider.judge(track, proposal, situation, now)
                    self.run(track, judged, now, present=present, batch=batch)
                case Decided(proposal, verdict):
                    decision_id = self._decided(track, proposal, verdict, now)
                case Run(action):
                    if batch is None or decision_id is None:
                        raise ValueError("a run needs its decision and the tick's batch")
                    track.decision_id = decision_id
                    batch.setdefault(action, []).append(track)
                case AskHuman(action, rationale, expires_at):
                    if decision_id is None:
                        raise ValueError("an approval needs its decision")
                    track.approval_id = self.recorder.approvals.request(
                        track.incident_id,
                        decision_id,
                        track.host,
                        action,
                        rationale,
                        at=now,
                        expires_at=expires_at,
                    )
                    track.move(Phase.AWAITING_APPROVAL)
                case _:
                    self._record(track, step, now)

    def _record(self, track: Track, step: Step, now: float) -> None:
        """The steps that only write to the store (and page): no host present needed."""
        incidents = self.recorder.incidents
        match step:
            case Note(kind, message):
                self.recorder.journal.event(
                    now, kind, message, host=track.host, incident_id=track.incident_id
                )
            case Retry(at):
                track.retry_at = at
            case ExpireApproval(approval_id):
                self.recorder.approvals.expire(approval_id, at=now)
            case RecordVerification(check):
                if track.decision_id is not None:
                    self.recorder.decisions.verified(track.decision_id, check)
                log.info("%s: incident %d %s", track.host, track.incident_id, check.reason)
            case Reopen(kind, message):
                incidents.set_status(track.incident_id, IncidentStatus.OPEN, now, kind, message)
                track.move(Phase.DECIDING)
                track.decision_id = None
            case Escalate(reason, status):
                self._escalate(track, reason, status, now)
            case TakeOut(reason):
                self.recorder.maintenance.take_out(
                    track.host, reason, at=now, incident_id=track.incident_id
                )
            case Close(status, kind, message, value):
                self._notify(track, now, "resolve", message, status)  # queued first: never lost
                incidents.set_status(
                    track.incident_id, status, now, kind, message, value_after=value, close=True
                )
                track.move(Phase.CLOSED)
                del self.tracks[track.host]
                log.info("%s: incident %d %s (%s)", track.host, track.incident_id, status, message)
            case _:
                raise ValueError(f"{step} cannot be carried out without the host's present")

    def _decided(self, track: Track, proposal: Proposal, verdict: Verdict, now: float) -> int:
        decision_id = self.recorder.decisions.record(
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

    def _escalate(self, track: Track, reason: str, status: IncidentStatus, now: float) -> None:
        """Queue the page, then write the escalation: a crash between the two pages twice at
        worst (queueing is idempotent), never not at all; a failed queueing is recorded."""
        self._notify(track, now, "trigger", reason, status)
        self.recorder.incidents.set_status(track.incident_id, status, now, "escalated", reason)
        track.move(Phase.ESCALATED)
        track.final_status = status

    def _notify(
        self, track: Track, now: float, event: str, reason: str, status: IncidentStatus
    ) -> None:
        """Hand a trigger or a resolve to the notifier (a store write, no network call)."""
        host, incident_id, kind = track.host, track.incident_id, track.kind
        try:
            if event == "trigger":
                self.notifier.escalate(
                    host=host, incident_id=incident_id, reason=reason, kind=kind, status=status
                )
            else:
                self.notifier.resolved(
                    host=host, incident_id=incident_id, reason=reason, kind=kind, status=status
                )
        except Exception as exc:  # a failed page must be recorded, not crash ticks
            what = "escalation" if event == "trigger" else "resolve"
            self.recorder.journal.event(
                now,
                "notify_failed",
                f"{what} not queued: {exc}",
                host=host,
                incident_id=incident_id,
            )
