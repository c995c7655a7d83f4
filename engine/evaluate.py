"""Evaluate: per-host state for one signal kind (NORMAL, the kind's status such as
HIGH_CPU, or UNKNOWN) with sustain and hysteresis.

Pure: takes sample windows and the previous state, returns the new state. The
sustain window is counted from the first high sample in the data, not from the
tick that noticed it, so a fresh engine acts as soon as the data allows; a rate's first
sample counts for the step it measures (n samples of CPU busy are n steps of it). The kind
(engine/signals.py) is data: its status, and what its value measures, in which unit.
"""

from __future__ import annotations

import logging
import math
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from engine.policy.schema import SignalRule
from engine.signals import SignalKind
from engine.types import HostState, HostStatus, MetricsBatch, Sample

log = logging.getLogger("autosre.engine")
SUMMARISE_OVER = 10  # more same-kind state changes than this in a tick: one summary line


@dataclass(frozen=True, slots=True)
class Thresholds:
    """What the evaluator needs of one signal kind: its numbers (from the policy) and names."""

    trigger: float
    clear: float
    sustain: float
    step: float
    staleness: float
    status: HostStatus = HostStatus.HIGH_CPU  # the status shown while the signal holds
    measure: str = "cpu"  # what the value is, in reasons
    unit: str = "%"
    covers: float = 0.0  # how long before its timestamp a sample stands for (a rate's step)

    @classmethod
    def of(cls, kind: SignalKind, rule: SignalRule) -> Thresholds:
        """The thresholds of a kind, with the numbers of its policy section."""
        return cls(
            rule.trigger,
            rule.clear,
            rule.sustain,
            rule.step,
            rule.staleness,
            status=kind.status,
            measure=kind.measure,
            unit=kind.unit,
            covers=rule.step if kind.rate else 0.0,
        )


def _high_run_start(window: Sequence[Sample], trigger: float, max_gap: float) -> float | None:
    """Timestamp of the first sample of the unbroken high run ending at the latest sample.

    Non-finite samples are not data: they are skipped, as if absent.
    """
    start: float | None = None
    later_ts: float | None = None
    for sample in reversed(window):
        if not math.isfinite(sample.value):
            continue
        if sample.value <= trigger:
            break
        if later_ts is not None and later_ts - sample.ts > max_gap:
            break  # a hole in the data breaks the run: we cannot claim it stayed high
        start = sample.ts
        later_ts = sample.ts
    return start


def _latest(window: Sequence[Sample]) -> Sample | None:
    """The newest sample with a finite value (a NaN compares false both ways: not data)."""
    if window:  # the usual case, read directly: a held window makes its samples when read
        newest = window[-1]
        if math.isfinite(newest.value):
            return newest
    for sample in reversed(window):
        if math.isfinite(sample.value):
            return sample
    return None


def evaluate_host(
    host: str,
    window: Sequence[Sample],
    previous: HostState | None,
    limits: Thresholds,
    now: float,
    *,
    error: str | None = None,
) -> HostState:
    """Decide one host's state from its sample window and its previous state."""
    prev_status = previous.status if previous else None
    if error is not None:
        return _state(host, HostStatus.UNKNOWN, previous, now, None, f"no data: {error}")
    # A NaN compares false both ways and would read as high and never clear: not data.
    # (Skipped where read, not filtered out first: a fleet's windows are most of a tick.)
    latest = _latest(window)
    if latest is None:
        return _state(
            host, HostStatus.UNKNOWN, previous, now, None, "no data: no series for this host"
        )
    age = now - latest.ts
    if age > limits.staleness:
        reason = f"stale: last sample {age:.0f}s old"
        return _state(host, HostStatus.UNKNOWN, previous, now, None, reason, latest.ts)
    value = latest.value
    shown = f"{limits.measure} {value:.1f}{limits.unit}"
    if prev_status is limits.status:
        clear = f"{limits.clear:g}{limits.unit}"
        if value < limits.clear:
            reason = f"{shown} below clear {clear}"
            return _state(host, HostStatus.NORMAL, previous, now, value, reason, latest.ts)
        reason = f"{shown}, not yet below clear {clear}"
        return _state(host, limits.status, previous, now, value, reason, latest.ts)
    if value <= limits.trigger:  # the usual host: no high run ends at its newest sample
        return _state(host, HostStatus.NORMAL, previous, now, value, shown, latest.ts)
    trigger = f"{limits.trigger:g}{limits.unit}"
    run_start = _high_run_start(window, limits.trigger, max_gap=max(limits.staleness, limits.step))
    assert run_start is not None  # the newest finite sample, above the trigger, starts one
    # The first sample of a rate already stands for the step before it.
    held = latest.ts - run_start + limits.covers
    if held >= limits.sustain:
        reason = f"{shown} above {trigger} for {held:.0f}s"
        return HostState(host, limits.status, value, run_start, reason, latest.ts)
    reason = f"{shown} above {trigger} for {held:.0f}s of {limits.sustain:g}s"
    since = _since(previous, HostStatus.NORMAL, now)
    return HostState(host, HostStatus.NORMAL, value, since, reason, latest.ts, run_start)


def _since(previous: HostState | None, status: HostStatus, now: float) -> float:
    """When ``status`` began: the previous state's start if it had it already, else now."""
    return previous.since if previous is not None and previous.status is status else now


def _state(
    host: str,
    status: HostStatus,
    previous: HostState | None,
    now: float,
    value: float | None,
    reason: str,
    sample_ts: float | None = None,
) -> HostState:
    return HostState(host, status, value, _since(previous, status, now), reason, sample_ts)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """One tick's states, and the hosts whose status changed."""

    states: Mapping[str, HostState]
    changes: tuple[tuple[HostState | None, HostState], ...]


class Evaluator:
    """Keeps each host's previous state between ticks; the decisions are evaluate_host's."""

    def __init__(self, limits: Thresholds, hosts: Iterable[str]) -> None:
        self.limits = limits
        self.hosts = tuple(hosts)
        self._states: dict[str, HostState] = {}
        self._left: frozenset[str] = frozenset()  # hosts left out of the last update

    @property
    def states(self) -> Mapping[str, HostState]:
        """The latest state of every host evaluated so far."""
        return dict(self._states)

    def update(
        self, batch: MetricsBatch, now: float, hosts: Collection[str] | None = None
    ) -> Evaluation:
        """Evaluate every host on one batch of samples; with ``hosts``, only those (the
        others keep their last state untouched: another replica watches them)."""
        changes: list[tuple[HostState | None, HostState]] = []
        chosen = self.hosts if hosts is None else [h for h in self.hosts if h in hosts]
        for host in chosen:
            previous = self._states.get(host)
            # A host back from another replica: its last state here is old news (its
            # hysteresis would hold a status the other replica may have cleared long ago).
            basis = None if host in self._left else previous
            current = evaluate_host(
                host, batch.windows.get(host, ()), basis, self.limits, now, error=batch.error
            )
            if previous is None or previous.status != current.status:
                changes.append((previous, current))
            self._states[host] = current
        self._left = frozenset() if hosts is None else frozenset(self.hosts).difference(chosen)
        return Evaluation(states=dict(self._states), changes=tuple(changes))


def log_changes(changes: tuple[tuple[HostState | None, HostState], ...]) -> None:
    """One log line per state change; a summary line when many hosts change alike."""
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
