"""The engine: one tick reads metrics, evaluates every host, and moves each incident on.

Ticks are serial (APScheduler, one instance at a time, see engine/scheduler.py).
What an incident needs is decided by engine/incident (advance, decide) as steps;
this loop carries the steps out, in order, writing each to the store before its side
effect starts. Planning and playbook runs happen off the tick: a slow model never holds
up detection or the other hosts, and runs of one action decided in the same tick are
batched into one ansible-runner invocation (engine/execute/launch.py). While a host's
signal rises, the first rung's run is staged: its read-only preflight runs and holds until
the verdict releases or discards it (engine/execute/staging.py).
"""

from __future__ import annotations

import logging
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace

from engine.carry_out import Batch, Seen, StepRunner
from engine.components import Components
from engine.escalate import LogNotifier, Notifier
from engine.evaluate import Evaluator, Thresholds, log_changes
from engine.execute.dispatch import RunDispatcher, wait_until_idle
from engine.execute.launch import Launcher
from engine.fetch_kinds import KindFetcher
from engine.incident.advance import advance, recovered
from engine.incident.decide import Decider
from engine.incident.life import Phase, Track, forget_closed
from engine.metrics import MetricsSource
from engine.plan.situation import Planner
from engine.policy_reload import trust_in_force
from engine.push.inbox import Inbox
from engine.read.run_counts import run_marks
from engine.record.live import LivePublisher
from engine.run_stage import RunStage
from engine.signals import signal_kind
from engine.takeover import HostShare, Takeover
from engine.tick_report import TickReport
from engine.types import HostState, Sample
from engine.watch import Watch, replaces

__all__ = ["Engine", "TickReport"]  # TickReport lives in engine/tick_report.py
log = logging.getLogger("autosre.engine")
POLLS_PER_STEP = 10  # ticks per scrape step while a rising window may complete
MIN_POLL = 0.1  # seconds: never tick (one query) more often than this


class Engine:
    """Wires the pipeline stages together; adapters are injected."""

    def __init__(
        self,
        components: Components,
        *,
        metrics: MetricsSource | Mapping[str, MetricsSource],
        planner: Planner,
        notifier: Notifier | None = None,
        clock: Callable[[], float] = time.time,
        plan_wait: float = 0.3,
        publisher: LivePublisher | None = None,
        share: HostShare | None = None,
    ) -> None:
        self.components = components
        self.policy = policy = components.policy
        self.inventory = components.inventory
        self.recorder = components.recorder
        self.notifier = notifier or LogNotifier()
        self.clock = clock
        self.plan_wait = plan_wait  # how long a tick waits for its own proposals
        self.publisher = publisher  # the live view for the web UI and /metrics
        sources = (
            metrics if isinstance(metrics, Mapping) else dict.fromkeys(policy.signals, metrics)
        )
        self.watches = {
            name: Watch(
                signal_kind(name),
                rule,
                sources[name],
                Evaluator(Thresholds.of(signal_kind(name), rule), self.inventory.hosts),
            )
            for name, rule in policy.signals.items()
        }
        self.fetcher = KindFetcher({name: watch.source for name, watch in self.watches.items()})
        self.tracks: dict[str, Track] = {}
        self.runs = RunDispatcher(
            executor=components.executor,
            recorder=self.recorder,
            workers=policy.remediation.max_concurrent,
            clock=clock,
        )
        self.launcher = Launcher(
            policy=policy,
            inventory=self.inventory,
            settings=components.settings,
            recorder=self.recorder,
            locks=components.locks,
            dispatcher=self.runs,
        )
        self.stager = self.launcher.stager
        self.decider = Decider(
            policy=policy,
            inventory=self.inventory,
            planner=planner,
            history=lambda host, since: self.recorder.memory.host_history(host, since=since),
            holds=self.recorder.maintenance.holds,
            # Rate limits count every run in the store (engine/policy/rate_limits.py).
            run_marks=lambda since: run_marks(self.recorder.sessions, since=since),
        )
        # Each decision records the trust level in force, from the policy the gate used.
        self.recorder.decisions.trust_of = lambda host, action: trust_in_force(
            self.policy, self.inventory.hosts, host, action
        )
        self.steps = StepRunner(
            recorder=self.recorder, notifier=self.notifier, decider=self.decider, tracks=self.tracks
        )
        self.run_stage = RunStage(
            policy=policy,
            inventory=self.inventory,
            launcher=self.launcher,
            dispatcher=self.runs,
            steps=self.steps,
            tracks=self.tracks,
        )
        self.inbox = Inbox.of(self.recorder.journal, policy)  # alerts pushed by Alertmanager
        # Settles what a crash left and resumes the incidents of this replica's hosts.
        self.takeover = Takeover(
            share or components.host_share(),
            recorder=self.recorder,
            hosts=self.inventory.hosts,
            kinds=self.watches,
            locks=components.locks,
            executor=components.executor,
            tracks=self.tracks,
        )
        self.takeover.sync(self.clock(), force=True)

    # -- lifecycle ------------------------------------------------------------

    def busy(self) -> bool:
        """True while a playbook run is in flight (a staged run waiting for its verdict is
        not: it acts only once released)."""
        return self.runs.busy() or self.stager.busy()

    def wait_idle(self, timeout: float) -> bool:
        """Wait (bounded) until no run is in flight; True if idle."""
        return wait_until_idle(self.busy, timeout)

    def shutdown(
        self, *, cancel_runs: bool = True, timeout: float = 30.0, grace: float = 0
    ) -> None:
        """Stop the workers; runs in flight get ``grace`` seconds, then are cancelled if asked."""
        self.decider.shutdown()
        if grace > 0 and self.runs.busy():
            log.info("waiting up to %gs for the run(s) in flight before cancelling them", grace)
            self.runs.wait_idle(grace)
        self.runs.shutdown(cancel_runs=cancel_runs, timeout=timeout)
        self.stager.shutdown(timeout)
        self.takeover.share.close()  # the other replicas take its hosts at once
        self.fetcher.close()
        for part in (*(watch.source for watch in self.watches.values()), self.notifier):
            close = getattr(part, "close", None)  # a source's client, the notifier's worker
            if callable(close):
                close()

    # -- the tick -------------------------------------------------------------

    def tick(self) -> TickReport:
        """Run one pass of the pipeline over every host."""
        started = time.monotonic()
        now = self.clock()
        active = self.takeover.sync(now)  # this replica's hosts, surely leased
        seen: dict[str, Seen] = {}
        windows: dict[str, Sequence[Sample]] = {}
        rising: dict[str, tuple[str, float]] = {}  # host -> (kind, since) while it rises
        unmatched, unread = 0, 0  # series that matched no host; queries not answered
        # A replica reads and evaluates its own share of the fleet only.
        leased = self.takeover.share.hosts()  # steadier than `active` (queries stay partial)
        share = None if len(leased) == len(self.inventory.hosts) else leased
        for watch in self.watches.values():
            restrict = getattr(watch.source, "restrict", None)
            if callable(restrict):
                restrict(share)
        fetched = self.fetcher.fetch(now)  # every kind's asked at once
        for name, watch in self.watches.items():
            batch = fetched[name].result()
            unmatched += len(batch.unmatched)
            unread += batch.error is not None
            evaluation = watch.evaluator.update(batch, now, hosts=share)
            log_changes(tuple(c for c in evaluation.changes if c[1].host in active))
            fleet = Counter(state.status for state in evaluation.states.values())
            for host, state in evaluation.states.items():
                if host not in active:
                    continue
                samples = batch.windows.get(host, ())
                track = self.tracks.get(host)
                # One state per host: its incident's kind; else an anomaly of any kind over no
                # data over normal (a kind without data must not hide another one's problem).
                held = seen[host].state if host in seen else None
                if (track is None or track.kind == name) and replaces(state, name, held):
                    seen[host], windows[host] = Seen(state, samples, fleet), samples
                if (
                    track is None
                    and state.rising_since is not None
                    and not self.run_stage.settling(host, state.rising_since, now, watch.rule)
                ):
                    rising.setdefault(host, (name, state.rising_since))
        batch_runs: Batch = defaultdict(list)
        self.run_stage.collect(now)
        self._advance_all(seen, now, batch_runs)
        # What is decided already (the rules planner answers at once) launches first, so a
        # slow model never holds up an action the policy allows; then a short, bounded
        # wait lets a fast model's proposals act in this same tick.
        self._judge_proposals(seen, now, batch_runs, wait_for=0.0)
        launched = self.run_stage.launch(batch_runs, now)
        if Decider.planning(self.tracks.values()):
            batch_runs = defaultdict(list)
            self._judge_proposals(seen, now, batch_runs, wait_for=self.plan_wait)
            launched += self.run_stage.launch(batch_runs, now)
        unheld = self.recorder.maintenance.unheld(rising, self.inventory.hosts, now)
        self.stager.tick(self.tracks, unheld, now)  # never staged in maintenance or taken out
        states = {host: s.state for host, s in seen.items()}
        if self.publisher:
            took = time.monotonic() - started
            self.publisher.publish(states, windows, took, unmatched=unmatched, read_ok=not unread)
        due, poll = self.inbox.take(now, self.tracks, *self._due(rising), active)
        return TickReport(now, time.monotonic() - started, states, tuple(launched), due, poll)

    def _due(self, rising: Mapping[str, tuple[str, float]]) -> tuple[float | None, float]:
        """When a rising host's window may complete, and how often to tick from then: the rise
        began up to a step before the first high sample this tick's grid saw."""
        due: float | None = None
        poll = float("inf")
        for kind, since in rising.values():
            watch = self.watches[kind]
            rule = watch.rule
            at = since + rule.sustain - watch.evaluator.limits.covers - rule.step
            due = at if due is None else min(due, at)
            poll = min(poll, max(MIN_POLL, rule.step / POLLS_PER_STEP))
        return due, (poll if due is not None else 1.0)

    def _advance_all(self, seen: Mapping[str, Seen], now: float, batch: Batch) -> None:
        ids = [track.incident_id for track in self.tracks.values()]
        for host in forget_closed(self.tracks, self.recorder.memory.closed_among(ids)):
            log.info("%s: its incident was resolved by a person; a new one opens if needed", host)
        awaiting = [t.approval_id for t in self.tracks.values() if t.approval_id is not None]
        approvals = self.recorder.memory.approvals(awaiting) if awaiting else {}
        for host, present in seen.items():
            track = self.tracks.get(host)
            watch = self.watches[track.kind] if track else None
            if track is None:
                watch = next(
                    (w for w in self.watches.values() if present.state.status is w.kind.status),
                    None,
                )
                if watch is None or self.run_stage.settling(
                    host, present.state.since, now, watch.rule
                ):
                    continue
                track = self._open(watch.kind.name, present.state, now)
            assert watch is not None
            if track.phase is Phase.AWAITING_APPROVAL:
                steps = self.decider.on_approval(
                    track,
                    approvals.get(track.approval_id or -1),
                    present.state,
                    recovered=recovered(present.state, watch.rule),
                    now=now,
                )
            else:
                steps = advance(track, present.state, present.samples, now, watch.rule)
            self.steps.run(track, steps, now, present=present, batch=batch)

    def _judge_proposals(
        self,
        seen: Mapping[str, Seen],
        now: float,
        batch: Batch,
        *,
        wait_for: float,
    ) -> None:
        for track, proposal in self.decider.proposals(self.tracks.values(), wait_for=wait_for):
            present = seen[track.host]
            assert track.situation is not None
            # The gate judges the host as it is now, not as it was when planning began.
            situation = replace(track.situation, state=present.state)
            steps = self.decider.judge(track, proposal, situation, now)
            self.steps.run(track, steps, now, present=present, batch=batch)

    def _open(self, kind: str, state: HostState, now: float) -> Track:
        incident_id = self.recorder.incidents.open(
            state.host, kind, state.value, state.reason, at=now, since=state.since
        )
        log.info("%s: incident %d opened (%s)", state.host, incident_id, state.reason)
        track = Track(incident_id, state.host, kind=kind)
        self.tracks[state.host] = track
        return track
