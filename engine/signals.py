"""Signal kinds: what the engine watches hosts for, one registry entry each.

An entry says what a kind is called (the incident's ``kind``, the policy's section under
``signals:``), the host status shown while it holds, what its value measures and in which
unit (for logs, prompts and the UI), and the defaults of its policy section (the query
and thresholds). The policy file carries each kind's query, thresholds and ladder
(engine/policy/schema.py ``SignalRule``). The evaluator, the incident's life, the
planner's prompt, the store and the UI take the kind as data, so adding a kind (memory,
disk, service down) is one entry here, its status in ``HostStatus``, and its playbooks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from engine.types import HostStatus


@dataclass(frozen=True, slots=True)
class SignalKind:
    """One kind of anomaly the engine can detect and remediate."""

    name: str  # "high_cpu": the incident's kind and the policy's section
    status: HostStatus  # shown while the signal holds on a host
    title: str  # "High CPU", for people
    measure: str  # "cpu": what the value is, in log lines and reasons
    value_name: str  # "cpu_percent": the value's name in a model's prompt
    unit: str  # "%"
    description: str  # one line for the planner's prompt
    defaults: Mapping[str, Any] = field(default_factory=dict)  # under the policy's section
    # True when each sample is a rate over the step before it (CPU busy): a run of n samples
    # is then evidence for n steps, as Monit's "for n cycles" counts; a gauge's n samples
    # span n - 1 steps.
    rate: bool = False


HIGH_CPU = SignalKind(
    name="high_cpu",
    status=HostStatus.HIGH_CPU,
    title="High CPU",
    measure="cpu",
    value_name="cpu_percent",
    unit="%",
    description="whole-host CPU use above the trigger for the sustain window",
    rate=True,
    defaults=MappingProxyType(
        {
            "query": (
                "100 * (1 - avg by (instance) "
                '(irate(node_cpu_seconds_total{{mode="idle"}}[{window}])))'
            ),
            "label": "instance",
            "trigger": 80.0,
            "clear": 60.0,
            "window": 30.0,
            "sustain": 300.0,
            "step": 15.0,
        }
    ),
)

SIGNALS: Mapping[str, SignalKind] = MappingProxyType({HIGH_CPU.name: HIGH_CPU})
# Host statuses that mean "a signal holds": shown first, and the only ones acted on.
ANOMALIES = frozenset(kind.status for kind in SIGNALS.values())


def signal_kind(name: str) -> SignalKind:
    """The registry entry of a kind; KeyError naming the known kinds if there is none."""
    try:
        return SIGNALS[name]
    except KeyError:
        raise KeyError(f"unknown signal kind {name!r} (known: {', '.join(SIGNALS)})") from None
