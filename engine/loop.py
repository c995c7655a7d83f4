"""The engine: one tick reads metrics, evaluates every host, and moves each incident on.

Ticks are serial (APScheduler, one instance at a time, see engine/scheduler.py);
playbook runs happen on a small worker pool so a slow run never stalls detection
on other hosts. Runs of the same action decided in the same tick are batched
into one ansible-runner invocation.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from engine.escalate import Notifier
from engine.evaluate import Evaluator, Thresholds
from engine.execute import Executor
from engine.guard import RefusedError, build_request
from engine.inventory import Inventory
from engine.locks import HeldLocks, HostBusyError, HostLocks
from engine.metrics import MetricsSource
from engine.plan import Planner, Situation
from engine.policy import gate
from engine.policy_file import Policy
from engine.record import Recorder
from engine.remediate import Phase, Track
from engine.types import (
    HostState,
    HostStatus,
    IncidentStatus,
    RunRequest,
    RunResult,
    Sample,
    VerdictKind,
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


@dataclass(slots=True)
class _Pending:
    host: str
    track: Track
    decision_id: int


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
    ) -> None:
        self.policy = policy
        self.inventory = inventory
        self.metrics = metrics
        self.planner = planner
        self.executor = executor
        self.recorder = recorder
        self.locks = locks
        self.notifier = notifier
        self.playbook_dir = playbook_dir
        self.runs_dir = runs_dir  # where the executor puts run dirs, for the record
        self.clock = clock
        rule = policy.detection.high_cpu
        self.evaluator = Evaluator(
            Thresholds(rule.trigger, rule.clear, rule.sustain, rule.step, rule.staleness),
            inventory.hosts,
        )
        self.tracks: dict[str, Track] = {}
        self._finished: queue.SimpleQueue[tuple[str, RunResult]] = queue.SimpleQueue()
        self._pool = ThreadPoolExecutor(
            max_workers=policy.remediation.max_concurrent, thread_name_prefix="autosre-run"
        )
        self._futures: set[Future[None]] = set()
        self._cancel = threading.Event()
        self._run_actions: dict[str, str] = {}
        self._resume()

    # -- lifecycle ------------------------------------------------------------

    def _resume(self) -> None:
        now = self.clock()
        interrupted = self.recorder.recover_interrupted(now)
        if interrupted:
            log.warning("recovered %d interrupted run(s); not re-running them", len(interrupted))
        for incident_id, host, status, tried in self.recorder.active_incidents():
            if host not in self.inventory.hosts:
                continue
            phase = Phase.DECIDING if status == IncidentStatus.OPEN else Phase.ESCALATED
            self.tracks[host] = Track(incident_id, host, tried=tried, phase=phase)
            self.tracks[host].final_status = IncidentStatus(status)
            log.info(
                "%s: resuming incident %d (%s, tried %s)",
                host,
                incident_id,
                status,
                ", ".join(tried) or "nothing",
            )

    def busy(self) -> bool:
        """True while a playbook run is in flight."""
        return any(not f.done() for f in self._futures)

    def wait_idle(self, timeout: float) -> bool:
        """Wait (bounded) until no run is in flight; True if idle."""
        deadline = time.monotonic() + timeout
        while self.busy():
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)
        return True

    def shutdown(self, *, cancel_runs: bool = True, timeout: float = 30.0) -> None:
        """Stop the worker pool, cancelling in-flight runs (they are recorded as canceled)."""
        if cancel_runs:
            self._cancel.set()
        self.wait_idle(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
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
        pending: dict[str, list[_Pending]] = defaultdict(list)
        fleet = Counter(state.status for state in evaluation.states.values())
        for host, state in evaluation.states.items():
            track = self.tracks.get(host)
            if track is None:
                if state.status is HostStatus.HIGH_CPU:
                    track = self._open(state, now)
                else:
                    continue
            self._advance(track, state, batch.windows.get(host, ()), now, fleet, pending)
        launched = [self._launch(action, items, now) for action, items in pending.items()]
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

    def _advance(
        self,
        track: Track,
        state: HostState,
        samples: Sequence[Sample],
        now: float,
        fleet: Counter[HostStatus],
        pending: dict[str, list[_Pending]],
    ) -> None:
        if track.phase is Phase.RUNNING:
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
        if state.status is HostStatus.NORMAL and state.value is not None:
            if state.value >= self.policy.detection.high_cpu.clear:
                return  # not sustained high, but not below clear either: keep watching
            how = "after remediation" if track.tried else "before any action"
            self._close(
                track,
                IncidentStatus.RESOLVED,
                "resolved",
                f"recovered {how}: {state.reason}",
                now=now,
                value=state.value,
            )
            return
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
            self._decide(track, state, now, fleet, pending)

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
            return
        if check.recovered is None:
            self._escalate(track, f"{check.reason}; a human must look", now, IncidentStatus.FAILED)
            return
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

    def _decide(
        self,
        track: Track,
        state: HostState,
        now: float,
        fleet: Counter[HostStatus],
        pending: dict[str, list[_Pending]],
    ) -> None:
        memory = self.policy.remediation.failure_memory.window
        history = self.recorder.host_history(track.host, since=now - max(memory, 86400.0))
        situation = Situation(
            host=track.host,
            state=state,
            incident_id=track.incident_id,
            tried=tuple(track.tried),
            history=history,
            fleet=dict(fleet),
            actions={n: a.description for n, a in self.policy.actions.items()},
            ladder=tuple(self.policy.remediation.ladder),
            now=now,
        )
        proposal = self.planner.propose(situation)
        verdict = gate(proposal, situation, self.policy)
        key = (verdict.kind.value, verdict.rule)
        if verdict.kind in (VerdictKind.WAIT, VerdictKind.DO_NOTHING) and key == track.last_verdict:
            track.retry_at = verdict.retry_at or now + 30.0
            return
        track.last_verdict = key
        decision_id = self.recorder.record_decision(
            track.incident_id, track.host, proposal, verdict, now
        )
        log.info(
            "%s: incident %d: %s proposed %s (%.2f); policy: %s - %s",
            track.host,
            track.incident_id,
            proposal.planner,
            proposal.action,
            proposal.confidence,
            verdict.kind,
            verdict.reason,
        )
        if verdict.kind is VerdictKind.EXECUTE and verdict.action is not None:
            track.decision_id = decision_id
            pending[verdict.action].append(_Pending(track.host, track, decision_id))
        elif verdict.kind is VerdictKind.ESCALATE:
            self._escalate(track, verdict.reason, now)
        else:
            track.retry_at = verdict.retry_at or now + 30.0

    # -- runs -----------------------------------------------------------------

    def _launch(self, action: str, items: list[_Pending], now: float) -> str | None:
        ident = (
            f"{time.strftime('%Y%m%dT%H%M%S', time.gmtime(now))}-{action}-{uuid.uuid4().hex[:8]}"
        )
        held: list[_Pending] = []
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
        run_dir = self.runs_dir / ident
        run_id = self.recorder.begin_run(
            request,
            ident=ident,
            artifact_dir=str(run_dir),
            trigger="engine",
            requested_by="engine",
            at=now,
            decisions=[(item.decision_id, item.track.incident_id) for item in held],
        )
        for item in held:
            item.track.phase = Phase.RUNNING
        log.info("run %s: %s on %s", ident, action, ", ".join(hosts))
        self._run_actions[ident] = action
        future = self._pool.submit(self._run, request, ident, run_id, locks)
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)
        return ident

    def _run(self, request: RunRequest, ident: str, run_id: int, locks: list[HeldLocks]) -> None:
        started = self.clock()
        try:
            result = self.executor.run(request, ident=ident, cancel=self._cancel)
        except Exception as exc:  # an executor bug must still end the run record
            ended = self.clock()
            result = RunResult(ident, "error", None, "", started, ended, {}, error=str(exc))
        finally:
            for lock in locks:
                lock.release()
        self.recorder.end_run(run_id, result)
        log.info(
            "run %s %s (rc %s) in %.1fs",
            ident,
            result.status,
            result.rc,
            result.ended_at - result.started_at,
        )
        for host in request.hosts:
            self._finished.put((host, result))

    def _collect_finished(self) -> None:
        rem = self.policy.remediation
        while True:
            try:
                host, result = self._finished.get_nowait()
            except queue.Empty:
                return
            track = self.tracks.get(host)
            action = self._run_actions.get(result.ident, "")
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
