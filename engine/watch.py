"""One signal kind the engine watches, and how much a host's state of it says."""

from __future__ import annotations

from dataclasses import dataclass

from engine.evaluate import Evaluator
from engine.metrics import MetricsSource
from engine.policy.schema import SignalRule
from engine.signals import SignalKind
from engine.types import HostState, HostStatus


@dataclass(frozen=True, slots=True)
class Watch:
    """One signal kind the engine watches: its rule, its source and its evaluator."""

    kind: SignalKind
    rule: SignalRule
    source: MetricsSource
    evaluator: Evaluator


def rank(state: HostState) -> int:
    """How much a host's state of one kind says: anomaly > UNKNOWN > NORMAL."""
    if state.status is HostStatus.NORMAL:
        return 0
    return 1 if state.status is HostStatus.UNKNOWN else 2


PRIMARY = "high_cpu"  # what a calm host shows: the dashboard's host table charts its CPU


def replaces(state: HostState, kind: str, held: HostState | None) -> bool:
    """Whether a kind's state stands for the host over the one held so far: a higher rank;
    or, both calm or both without data, the primary kind (so a calm host's published value
    and samples are its CPU, whatever the policy's order of kinds)."""
    if held is None or rank(state) > rank(held):
        return True
    return rank(state) == rank(held) < 2 and kind == PRIMARY
