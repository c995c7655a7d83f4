"""The engine: one tick reads metrics, evaluates every host, and moves each incident on.

Ticks are serial (APScheduler, one instance at a time, see engine/scheduler.py).
Planning and playbook runs happen off the tick: a model that is slow to answer
never holds up detection or the other hosts, and runs of one action decided in
the same tick are batched into one ansible-runner invocation (engine/dispatch.py).
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from engine.errors import HostBusyError, RefusedError
from engine.escalate import Notifier
from engine.evaluate import Evaluator, Thresholds
from engine.execute.dispatch import RunDispatcher
from engine.execute.locks import HeldLocks, HostLocks
from engine.execute.runner import Executor
from engine.incident.decide import Decider
from engine.incident.life import Pending, Phase, Track
from engine.inventory import Inventory
from engine.metrics.prometheus import MetricsSource
from engine.plan.rules import Planner
from engine.policy.file import Policy
from engine.policy.whitelist import build_request
from engine.record.live import LivePublisher
from engine.record.recorder import Recorder
from engine.types import (
    HostState,
    HostStatus,
    IncidentStatus,
    Sample,
)
from engine.verify import check_recovery, unverifiable

log = logging.getLogger("autosre.engine")
SUMMARISE_OVER = 10  # more same-kind state changes than this in a tick: one summary line


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick saw and did (for logs, tests and the bench)."""

    at: float
    duration: float
    states: dict[str, HostState]
    launched: tuple[str, ...]  # run idents started this tick


class Engine:
    """Wires the pipeline stages together; adapters are injected."""

    def __init__(
        self,
        *,
        policy: Policy,
        inventory: Inventory,
        metrics: MetricsSource,
        planner: Planner,
        executor: Executor,
        recorder: Recorder,
        locks: HostLocks,
        notifier: Notifier,
        playbook_dir: Path,
        runs_dir: Path,
        clock: Callable[[], float] = time.time,
        plan_wait: float = 0.3,
        publisher: LivePublisher | None = None,
    ) -> None:
        self.policy = policy
        self.inventory = inventory
        self.metrics = metrics
        self.planner = planner
        self.recorder = recorder
        self.locks = locks
        self.notifier = notifier
        self.playbook_dir = playbook_dir
        self.runs_dir = runs_dir  # where the executor puts run dirs, for the record
        self.clock = clock
        self.publisher = publisher  # the live view for the web UI and /metrics
        rule = policy.detection.high_cpu
        self.evaluator = Evaluator(
            Thresholds(rule.trigger, rule.clear, rule.sustain, rule.step, rule.staleness),
            inventory.hosts,
        )
        self.tracks: dict[str, Track] = {}
        workers = policy.remediation.max_concurrent
        self.plan_wait = plan_wait  # how long a tick waits for its own proposals
        self.runs = RunDispatcher(
            executor=executor, recorder=recorder, workers=workers, clock=clock
        )
        self.decider = Decider(
            policy=policy,
            inventory=inventory,
            planner=planner,
            recorder=recorder,
            escalate=self._escalate,
            close=self._close,
            recovered=self._recovered,
        )
        self._resume()

    # -- lifecycle ------------------------------------------------------------

    def _resume(self) -> None:
        now = self.clock()
        interrupted = self.recorder.recover_interrupted(now)
        if interrupted:
            log.warning("recovered %d interrupted run(s); not re-running them", len(interrupted))
        waiting = {a.incident_id: a for a in self.recorder.pending_approvals()}
        for incident_id, host, status, tried in self.recorder.active_incidents():
            if host not in self.inventory.hosts:
                continue
            track = Track(incident_id, host, tried=tried)
            track.final_status = IncidentStatus(status)
            if status == IncidentStatus.AWAITING_APPROVAL:
                pending = waiting.get(incident_id)
                if pending is not None:
                    track.phase = Phase.AWAITING_APPROVAL
                    track.approval_id = pending.id
            elif status != IncidentStatus.OPEN:
                track.phase = Phase.ESCALATED
            self.tracks[host] = track
            log.info(
                "%s: resuming incident %d (%s, tried %s)",
                host,
                incident_id,
                status,
                ", ".join(tried) or "nothing",
            )

    def busy(self) -> bool:
        """True while a playbook run is in flight."""
        return self.runs.busy()

    def wait_idle(self, timeout: float) -> bool:
        """Wait (bounded) until no run is in flight; True if idle."""
        return self.runs.wait_idle(timeout)

    def shutdown(self, *, cancel_runs: bool = True, timeout: float = 30.0) -> None:
        """Stop the workers, cancelling in-flight runs (they are recorded as canceled)."""
        self.decider.shutdown()
        self.runs.shutdown(cancel_runs=cancel_runs, timeout=timeout)
        close = getattr(self.metrics, "close", None)
        if callable(close):
            close()

    # -- the tick -------------------------------------------------------------

    def tick(self) -> TickReport:
        """Run one pass of the pipeline over every host."""
        started = time.monotonic()
        now = self.clock()
        batch = self.metrics.fetch(now)
        evaluation = self.evaluator.update(batch, now)
        self._log_changes(evaluation.changes)
        self._collect_finished()
        approvals = self.decider.poll_approvals(self.tracks)
        pending: dict[str, list[Pending]] = defaultdict(list)
        fleet = Counter(state.status for state in evaluation.states.values())
        for host, state in evaluation.states.items():
            track = self.tracks.get(host)
            if track is None:
                if state.status is not HostStatus.HIGH_CPU:
                    continue
                track = self._open(state, now)
            samples = batch.windows.get(host, ())
            if track.phase is Phase.AWAITING_APPROVAL:
                self.decider.on_approval(track, state, samples, approvals, now, fleet, pending)
            else:
                self._advance(track, state, samples, now, fleet)
        # What is decided already (the rules planner answers at once) launches first, so a
        # slow model never holds up an action the policy allows; then a short, bounded
        # wait lets a fast model's proposals act in this same tick.
        self.decider.collect_plans(self.tracks, evaluation.states, now, pending)
        launched = [self._launch(action, items, now) for action, items in pending.items()]
        if self.decider.planning(self.tracks):
            pending = defaultdict(list)
            self.decider.collect_plans(
                self.tracks, evaluation.states, now, pending, wait_for=self.plan_wait
            )
            launched += [self._launch(action, items, now) for action, items in pending.items()]
        if self.publisher:
            self.publisher.publish(evaluation.states, batch.windows, time.monotonic() - started)
        return TickReport(
            now,
            time.monotonic() - started,
            dict(evaluation.states),
            tuple(ident for ident in launched if ident),
        )

    def _log_changes(self, changes: tuple[tuple[HostState | None, HostState], ...]) -> None:
        grouped: dict[tuple[str, str], list[HostState]] = defaultdict(list)
        for old, new in changes:
            grouped[(old.status if old else "START", new.status)].append(new)
        for (old_status, new_status), states in grouped.items():
            if len(states) > SUMMARISE_OVER:
                names = ", ".join(s.host for s in states[:5])
                log.info(
                    "%d hosts %s -> %s (%s, ...): %s",
                    len(states),
                    old_status,
                    new_status,
                    names,
                    states[0].reason,
                )
                continue
            for state in states:
                log.info("%s %s -> %s: %s", state.host, old_status, new_status, state.reason)

    def _open(self, state: HostState, now: float) -> Track:
        incident_id = self.recorder.open_incident(
            state.host, "high_cpu", state.value, state.reason, at=now, since=state.since
        )
        log.info("%s: incident %d opened (%s)", state.host, incident_id, state.reason)
        track = Track(incident_id, state.host)
        self.tracks[state.host] = track
        return track

    def _close(
        self,
        track: Track,
        status: IncidentStatus,
        kind: str,
        message: str,
        *,
        now: float,
        value: float | None,
    ) -> None:
        self.recorder.set_status(
            track.incident_id, status, now, kind, message, cpu_after=value, close=True
        )
        log.info("%s: incident %d %s (%s)", track.host, track.incident_id, status, message)
        del self.tracks[track.host]

    def _recovered(self, state: HostState) -> bool:
        """Below the clear threshold now (not just 'not sustained high')."""
        clear = self.policy.detection.high_cpu.clear
        return state.status is HostStatus.NORMAL and state.value is not None and state.value < clear

    def _advance(
        self,
        track: Track,
        state: HostState,
        samples: Sequence[Sample],
        now: float,
        fleet: Counter[HostStatus],
    ) -> None:
        if track.phase in (Phase.RUNNING, Phase.PLANNING):
            return
        if track.phase is Phase.ESCALATED:
            if state.status is HostStatus.NORMAL:
                self._close(
                    track,
                    track.final_status,
                    "recovered",
                    f"host recovered after escalation: {state.reason}",
                    now=now,
                    value=state.value,
                )
            return
        if track.phase is Phase.VERIFYING:
            self._verify(track, state, samples, now)
            return  # whatever comes next is decided on the next tick's data
        if state.status is HostStatus.NORMAL:
            if self._recovered(state):
                how = "after remediation" if track.tried else "before any action"
                self._close(
                    track,
                    IncidentStatus.RESOLVED,
                    "resolved",
                    f"recovered {how}: {state.reason}",
                    now=now,
                    value=state.value,
                )
            return  # not sustained high, but not below clear either: keep watching
        if state.status is HostStatus.UNKNOWN:
            if not track.noted_unknown:
                track.noted_unknown = True
                self.recorder.event(
                    now,
                    "holding",
                    f"no action without data: {state.reason}",
                    host=track.host,
                    incident_id=track.incident_id,
                )
            return
        track.noted_unknown = False
        if now >= track.retry_at:
            self.decider.plan(track, state, samples, now, fleet)

    def _verify(
        self, track: Track, state: HostState, samples: Sequence[Sample], now: float
    ) -> None:
        """Judge a finished run on fresh data: resolve, decide again, or fail to a human."""
        rule = self.policy.detection.high_cpu
        check = check_recovery(
            state,
            samples,
            clean_from=track.run_ended + rule.step,
            not_before=track.verify_after,
            clear=rule.clear,
            now=now,
        )
        if check is None and now < track.verify_deadline:
            return
        if check is None:
            check = unverifiable(track.host, now=now, waited=now - track.verify_after)
        if track.decision_id is not None:
            self.recorder.record_verification(track.decision_id, check)
        log.info("%s: incident %d %s", track.host, track.incident_id, check.reason)
        if check.recovered:
            self._close(
                track, IncidentStatus.RESOLVED, "resolved", check.reason, now=now, value=check.value
            )
        elif check.recovered is None:
            self._escalate(track, f"{check.reason}; a human must look", now, IncidentStatus.FAILED)
        else:
            track.phase = Phase.DECIDING
            track.decision_id = None
            self.recorder.set_status(
                track.incident_id, IncidentStatus.OPEN, now, "not_recovered", check.reason
            )

    def _escalate(
        self,
        track: Track,
        reason: str,
        now: float,
        status: IncidentStatus = IncidentStatus.ESCALATED,
    ) -> None:
        track.phase = Phase.ESCALATED
        track.final_status = status
        self.recorder.set_status(track.incident_id, status, now, "escalated", reason)
        try:
            self.notifier.escalate(host=track.host, incident_id=track.incident_id, reason=reason)
        except Exception as exc:  # a failed page must be recorded, not crash ticks
            self.recorder.event(
                now,
                "notify_failed",
                f"escalation not delivered: {exc}",
                host=track.host,
                incident_id=track.incident_id,
            )

    # -- runs -----------------------------------------------------------------

    def _launch(self, action: str, items: list[Pending], now: float) -> str | None:
        stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
        ident = f"{stamp}-{action}-{uuid.uuid4().hex[:8]}"
        held: list[Pending] = []
        locks: list[HeldLocks] = []
        for item in items:
            try:
                locks.append(self.locks.acquire([item.host], f"engine run {ident}"))
                held.append(item)
            except HostBusyError as exc:
                self.recorder.event(
                    now, "waiting", str(exc), host=item.host, incident_id=item.track.incident_id
                )
                item.track.retry_at = now + 5.0
                item.track.last_verdict = None
        if not held:
            return None
        hosts = [item.host for item in held]
        try:
            request = build_request(
                self.policy, self.inventory, self.playbook_dir, action=action, hosts=hosts
            )
        except RefusedError as exc:
            for lock in locks:
                lock.release()
            for item in held:
                self._escalate(
                    item.track, f"cannot run {action}: {exc}", now, IncidentStatus.FAILED
                )
            return None
        run_id = self.recorder.begin_run(
            request,
            ident=ident,
            artifact_dir=str(self.runs_dir / ident),
            trigger="engine",
            requested_by="engine",
            at=now,
            decisions=[(item.decision_id, item.track.incident_id) for item in held],
        )
        for item in held:
            item.track.phase = Phase.RUNNING
        log.info("run %s: %s on %s", ident, action, ", ".join(hosts))
        self.runs.start(request, ident=ident, run_id=run_id, locks=locks)
        return ident

    def _collect_finished(self) -> None:
        rem = self.policy.remediation
        for host, result, action in self.runs.finished():
            track = self.tracks.get(host)
            if track is None or track.phase is not Phase.RUNNING:
                continue
            host_ok = result.host_succeeded(host)
            track.after_run(
                action,
                host_ok=host_ok,
                ended_at=result.ended_at,
                settle=self.policy.settle,
                verify_timeout=rem.verify_timeout,
            )
            if not host_ok:
                self.recorder.set_status(
                    track.incident_id,
                    IncidentStatus.OPEN,
                    self.clock(),
                    "run_failed",
                    f"{action} did not complete on {host} ({result.status}); deciding again",
                )
