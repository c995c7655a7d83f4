"""Runs the checks side by side, each bounded: one that hangs is reported, never waited on."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.doctor.report import Finding, Report, fail

log = logging.getLogger("autosre.doctor")


@dataclass(frozen=True, slots=True)
class Check:
    """A named check: ``run`` returns its findings (one or several lines)."""

    name: str
    run: Callable[[], Sequence[Finding]]
    timeout: float


def run_checks(checks: Sequence[Check], *, grace: float = 2.0) -> Report:
    """Every check in its own daemon thread; a check past its timeout (plus ``grace``, as
    each bounds its own I/O first) is a failure, and the thread is left behind."""
    results: dict[int, Sequence[Finding]] = {}
    threads: list[tuple[Check, threading.Thread, float]] = []
    for index, check in enumerate(checks):
        thread = threading.Thread(
            target=_guarded, args=(check, index, results), name=f"doctor-{check.name}", daemon=True
        )
        thread.start()
        threads.append((check, thread, time.monotonic() + check.timeout + grace))
    findings: list[Finding] = []
    for index, (check, thread, deadline) in enumerate(threads):
        thread.join(max(0.0, deadline - time.monotonic()))
        if index in results:
            findings.extend(results[index])
        else:
            findings.append(fail(check.name, f"no answer within {check.timeout:g}s"))
    return Report(findings)


def _guarded(check: Check, index: int, results: dict[int, Sequence[Finding]]) -> None:
    try:
        results[index] = list(check.run())
    except Exception as exc:  # a check's bug is its failure, not doctor's traceback
        log.debug("doctor check %s raised", check.name, exc_info=exc)
        results[index] = [fail(check.name, f"{type(exc).__name__}: {exc}")]
