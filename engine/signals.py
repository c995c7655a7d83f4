"""Signal kinds: what the engine watches hosts for, one registry entry each.

An entry says what a kind is called (the incident's ``kind``, the policy's section under
``signals:``), the host status shown while it holds, what its value measures and in which
unit (for logs, prompts and the UI), and the defaults of its policy section (the query
and thresholds). The policy file carries each kind's query, thresholds and ladder
(engine/policy/schema.py ``SignalRule``). The evaluator, the incident's life, the
planner's prompt, the store and the UI take the kind as data, so adding a kind is one
entry here, its status in ``HostStatus``, its local reader (engine/metrics/local.py) and its
playbooks. Kinds: high_cpu, memory_pressure, disk_full, service_down.
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

# Gauges below (rate=False): n samples span n - 1 steps. Every kind reads "higher is worse",
# so the one evaluator (above trigger for the sustain window, then below clear) serves all.
MEMORY_PRESSURE = SignalKind(
    name="memory_pressure",
    status=HostStatus.MEMORY_PRESSURE,
    title="Memory pressure",
    measure="memory",
    value_name="memory_used_percent",
    unit="%",
    description="memory in use (100 - available) above the trigger for the sustain window",
    defaults=MappingProxyType(
        {
            "query": (
                "max by (instance) (100 * (1 - node_memory_MemAvailable_bytes"
                " / node_memory_MemTotal_bytes))"
            ),
            "label": "instance",
            "trigger": 90.0,
            "clear": 80.0,
            "window": 15.0,  # unused by the query; it sets how long verification settles
            "sustain": 300.0,
            "step": 15.0,
        }
    ),
)

# The fullest real filesystem per host, or 100 when one is predicted to fill within 4 h
# from its last hour (predict_linear of free bytes below zero). The fstype filter is part
# of the query, so a policy picks its filesystems (the lab's data disk is a tmpfs).
# The prediction's range is written out, not {window}: verification settles one window.
_DISK_FS = 'fstype!~"tmpfs|overlay|squashfs",mountpoint!~"/(dev|proc|sys|run)($|/).*"'
DISK_FULL = SignalKind(
    name="disk_full",
    status=HostStatus.DISK_FULL,
    title="Disk nearly full",
    measure="disk",
    value_name="disk_used_percent",
    unit="%",
    description=(
        "the fullest filesystem's used space above the trigger, or 100 when it is "
        "predicted to fill within hours"
    ),
    defaults=MappingProxyType(
        {
            "query": (
                "max by (instance) ("
                f"100 * (1 - node_filesystem_avail_bytes{{{{{_DISK_FS}}}}}"
                f" / node_filesystem_size_bytes{{{{{_DISK_FS}}}}})"
                " or label_replace(100 * (predict_linear("
                f"node_filesystem_avail_bytes{{{{{_DISK_FS}}}}}[1h], 4 * 3600) < bool 0),"
                ' "signal", "predicted", "", ""))'
            ),
            "label": "instance",
            "trigger": 90.0,
            "clear": 85.0,
            "window": 15.0,
            "sustain": 600.0,
            "step": 15.0,
        }
    ),
)

# blackbox_exporter's probe_success (1 up, 0 down) turned into "percent down": 100 when
# every probe of the host fails. Locally the reader probes nginx itself.
SERVICE_DOWN = SignalKind(
    name="service_down",
    status=HostStatus.SERVICE_DOWN,
    title="Service down",
    measure="down",
    value_name="service_down_percent",
    unit="%",
    description="nginx not running or its HTTP probe failing (100 = down, 0 = up)",
    defaults=MappingProxyType(
        {
            "query": "100 * (1 - min by (instance) (probe_success))",
            "label": "instance",
            "trigger": 50.0,
            "clear": 10.0,
            "window": 15.0,
            "sustain": 30.0,
            "step": 15.0,
        }
    ),
)

SIGNALS: Mapping[str, SignalKind] = MappingProxyType(
    {kind.name: kind for kind in (HIGH_CPU, MEMORY_PRESSURE, DISK_FULL, SERVICE_DOWN)}
)
# Host statuses that mean "a signal holds": shown first, and the only ones acted on.
ANOMALIES = frozenset(kind.status for kind in SIGNALS.values())


def signal_kind(name: str) -> SignalKind:
    """The registry entry of a kind; KeyError naming the known kinds if there is none."""
    try:
        return SIGNALS[name]
    except KeyError:
        raise KeyError(f"unknown signal kind {name!r} (known: {', '.join(SIGNALS)})") from None
