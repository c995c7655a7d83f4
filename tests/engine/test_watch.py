"""Which signal kind's state stands for a host when several kinds are watched: the
dashboard's host table shows its value and samples as CPU."""

from __future__ import annotations

import itertools

from engine.types import HostState, HostStatus
from engine.watch import PRIMARY, replaces


def _state(status: HostStatus, value: float | None) -> HostState:
    return HostState("web1", status, value, 0.0, "")


def _stands(order: list[tuple[str, HostState]]) -> str:
    """The kind whose state the loop keeps, seeing the kinds in this order."""
    held: tuple[str, HostState] | None = None
    for kind, state in order:
        if replaces(state, kind, None if held is None else held[1]):
            held = (kind, state)
    assert held is not None
    return held[0]


def test_a_calm_host_shows_its_cpu_whatever_the_policys_order() -> None:
    kinds = {
        "service_down": _state(HostStatus.NORMAL, 0.0),
        "disk_full": _state(HostStatus.NORMAL, 40.0),
        PRIMARY: _state(HostStatus.NORMAL, 31.0),
        "memory_pressure": _state(HostStatus.NORMAL, 55.0),
    }
    for order in itertools.permutations(kinds.items()):
        assert _stands(list(order)) == PRIMARY


def test_an_anomaly_or_missing_data_still_outranks_a_calm_cpu() -> None:
    disk = ("disk_full", _state(HostStatus.DISK_FULL, 97.0))
    cpu = (PRIMARY, _state(HostStatus.NORMAL, 20.0))
    assert _stands([disk, cpu]) == "disk_full" and _stands([cpu, disk]) == "disk_full"
    unknown = ("memory_pressure", _state(HostStatus.UNKNOWN, None))
    assert _stands([cpu, unknown]) == "memory_pressure"
    # Two anomalies: the first seen stays (the CPU preference is for calm hosts only).
    memory = ("memory_pressure", _state(HostStatus.MEMORY_PRESSURE, 95.0))
    high = (PRIMARY, _state(HostStatus.HIGH_CPU, 99.0))
    assert _stands([memory, high]) == "memory_pressure"
