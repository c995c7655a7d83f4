"""Verify: did the host recover after a run? Pure; reads the tick's fresh samples of the
incident's signal kind (what it measures, in which unit, are the kind's).

Only samples taken after the run ended count, and only once the settle time has
passed; their median decides, so one noisy sample neither cures nor condemns a
host. No data is "unknown", never success.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence

from engine.types import HostState, HostStatus, Sample, Verification


def check_recovery(
    state: HostState,
    samples: Sequence[Sample],
    *,
    clean_from: float,
    not_before: float,
    clear: float,
    now: float,
    measure: str = "cpu",
    unit: str = "%",
) -> Verification | None:
    """A verification from fresh data, or None while there is no sample new enough yet."""
    if state.status is HostStatus.UNKNOWN or state.sample_ts is None:
        return None
    if state.sample_ts < not_before:
        return None
    fresh = [s.value for s in samples if s.ts >= clean_from]
    if not fresh:
        return None
    value = statistics.median(fresh)
    detail = f"median {measure} {value:.1f}{unit} of {len(fresh)} sample(s) since the run ended"
    limit = f"{clear:g}{unit}"
    if value < clear:
        return Verification(state.host, True, value, now, f"recovered: {detail}, below {limit}")
    return Verification(
        state.host, False, value, now, f"not recovered: {detail}, not below {limit}"
    )


def unverifiable(host: str, *, now: float, waited: float) -> Verification:
    """The verification that ends a wait without fresh data: unknown, not success."""
    reason = f"cannot verify: no fresh data for {waited:.0f}s after the run"
    return Verification(host, None, None, now, reason)
