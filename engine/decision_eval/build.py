"""A scenario made into the engine's own ``Situation``, through the engine's own builder
(``Decider.situation``) and evaluator (``evaluate_host``), so a case is asked exactly what
the engine would ask at that decision point."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

from engine.decision_eval.case import Scenario
from engine.evaluate import Thresholds, evaluate_host
from engine.incident.decide import Decider
from engine.incident.life import Track
from engine.inventory_types import Inventory, InventoryHost
from engine.plan.rules import RulesPlanner
from engine.plan.situation import Situation
from engine.policy.schema import Policy
from engine.signals import signal_kind
from engine.types import (
    Attempt,
    HostHistory,
    HostHolds,
    HostState,
    HostStatus,
    MaintenanceWindow,
    Sample,
)

OTHER_INCIDENT = -1  # the incident id given to past runs of other incidents


def samples_of(scenario: Scenario) -> tuple[Sample, ...]:
    """The scenario's samples as the metrics source would give them."""
    if scenario.samples is None:
        return ()
    return tuple(Sample(scenario.host, ts, v) for ts, v in scenario.samples.timed(scenario.now))


def state_of(scenario: Scenario, policy: Policy) -> HostState:
    """The host's state: as written, or as the engine's evaluator finds it in the samples."""
    now = scenario.now
    if scenario.state is not None:
        spec = scenario.state
        return HostState(
            scenario.host, spec.status, spec.value, now - spec.for_seconds, spec.reason, now
        )
    limits = Thresholds.of(signal_kind(scenario.kind), policy.signal(scenario.kind))
    return evaluate_host(scenario.host, samples_of(scenario), None, limits, now)


def history_of(scenario: Scenario, incident_id: int) -> HostHistory:
    """The host's past runs, with times made absolute."""
    attempts = []
    for run in scenario.history:
        started = scenario.now - run.minutes_ago * 60
        ended = None if run.took_minutes is None else started + run.took_minutes * 60
        attempts.append(
            Attempt(
                incident_id=incident_id if run.same_incident else OTHER_INCIDENT,
                action=run.action,
                started_at=started,
                ended_at=ended,
                succeeded=run.cured,
            )
        )
    attempts.sort(key=lambda a: a.started_at)
    return HostHistory(scenario.host, tuple(attempts), scenario.remediating_hosts)


def holds_of(scenario: Scenario) -> HostHolds:
    """Maintenance windows and a take-out, as the store would give them."""
    now = scenario.now
    windows = tuple(
        MaintenanceWindow(
            id=i + 1,
            host=None if hold.group else scenario.host,
            group=hold.group,
            reason=hold.reason,
            set_by=hold.set_by,
            starts_at=now - hold.started_minutes_ago * 60,
            ends_at=now + hold.ends_in_minutes * 60,
        )
        for i, hold in enumerate(scenario.maintenance)
    )
    out = scenario.taken_out
    if out is None:
        return HostHolds(windows=windows)
    return HostHolds(
        windows=windows, disabled_at=now - out.minutes_ago * 60, disabled_reason=out.reason
    )


def build_situation(scenario: Scenario, policy: Policy, *, incident_id: int = 1) -> Situation:
    """The Situation the engine would build for this scenario (KeyError-free: the policy
    must watch the scenario's kind, or ValueError says so)."""
    if scenario.kind not in policy.signals:
        raise ValueError(f"the policy does not watch {scenario.kind}")
    history = history_of(scenario, incident_id)
    holds = holds_of(scenario)
    host = InventoryHost(
        name=scenario.host,
        address=scenario.host,
        groups=tuple(scenario.groups),
        labels=dict(scenario.labels),
    )
    inventory = Inventory(path=Path("<eval case>"), hosts={scenario.host: host})
    decider = Decider(
        policy=policy,
        inventory=inventory,
        planner=RulesPlanner(),  # unused: only the situation is built here
        history=lambda _host, since: replace(
            history, attempts=tuple(a for a in history.attempts if a.started_at >= since)
        ),
        holds=lambda _host, _groups, _now: holds,
        workers=1,
    )
    try:
        track = Track(incident_id, scenario.host, kind=scenario.kind, tried=list(scenario.tried))
        fleet: Counter[HostStatus] = Counter(scenario.fleet)
        situation = decider.situation(
            track, state_of(scenario, policy), samples_of(scenario), scenario.now, fleet
        )
    finally:
        decider.shutdown()
    # The gate sees the holds as the engine's judge() does: read at decision time.
    return replace(situation, holds=holds)
