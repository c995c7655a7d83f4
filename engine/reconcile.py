"""After a crash: what the runs the store still calls running really did, read from what they
left on disk, and the Ansible processes a killed engine left behind.

A run's scratch dir (engine/execute/runner.py) names its ansible-playbook (the vars file in
its command line) and holds its raw events; the run's artifact dir holds the events already
processed. A ``playbook_on_stats`` event in either means the playbook finished: its
per-host recap is the run's real result. Otherwise the run was cut off and is left to be
marked interrupted (its effect unknown: the host is verified on fresh data before anything
else runs). Either way the scratch dir goes: it may hold secret vars in clear.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil

from engine.errors import HostBusyError
from engine.execute.locks import Locks
from engine.execute.results import host_stats
from engine.record.recorder import Recorder
from engine.record.runs import InFlight
from engine.types import RunResult

log = logging.getLogger("autosre.engine")
STALE_SCRATCH = 86400.0  # seconds


@dataclass(frozen=True, slots=True)
class Reconciled:
    """One run found in flight at start: its real result if it finished, and what became of
    the processes it left behind."""

    run_id: int
    ident: str
    result: RunResult | None  # None: cut off before its end
    leftovers: tuple[str, ...] = ()


def reconcile_runs(
    recorder: Recorder,
    locks: Locks,
    executor: object,
    *,
    wait: float = 30.0,
    clock: Callable[[], float] = time.time,
    hosts: Collection[str] | None = None,
    busy: set[str] | None = None,
) -> list[Reconciled]:
    """Settle every run the store calls running whose owner is gone (its hosts' locks are
    free: a run by hand in another process holds them): wait at most ``wait`` seconds in
    all for the ansible-playbook each left, stop it if it still runs, record a finished run's real
    result; an executor that runs elsewhere (AWX) follows its job instead. Scratch dirs of
    settled runs are removed, and any older than a day. ``hosts``: only runs on these (a
    replica taking them over); ``busy`` collects the hosts of runs whose owner lives."""
    scratch_dir = getattr(executor, "scratch_dir", None)
    resume = getattr(executor, "resume", None)  # jobs that outlive the engine elsewhere
    found = []
    # One deadline for all: what several runs left waits together, not one after another.
    deadline = time.monotonic() + wait
    for run in recorder.runs.in_flight():
        if hosts is not None and not any(host in hosts for host in run.hosts):
            continue
        try:
            # A lease whose owner died on this machine is reclaimed: what it left is settled
            # here. Elsewhere, a lease holds until its owner's run could have ended.
            held = locks.acquire(run.hosts, f"engine reconciling run {run.ident}", reclaim=True)
        except HostBusyError:
            if busy is not None:
                busy.update(run.hosts)
            continue  # its owner lives: not ours to settle
        try:
            leftovers: list[str] = []
            result = None
            if isinstance(scratch_dir, Path):
                scratch = scratch_dir / run.ident
                leftovers = settle_leftovers(scratch, max(0.0, deadline - time.monotonic()))
                result = finished_result(run, scratch, clock())
                shutil.rmtree(scratch, ignore_errors=True)
            if result is None and callable(resume):
                result = resume(run.ident, run.started_at, max(0.0, deadline - time.monotonic()))
            if result is not None:
                recorder.runs.end(run.id, result)
                log.warning("run %s: %s", run.ident, result.error)
            for line in leftovers:
                recorder.journal.event(clock(), "run_leftover", line, run_id=run.id)
                log.warning("run %s: %s", run.ident, line)
        finally:
            held.release()
        found.append(Reconciled(run.id, run.ident, result, tuple(leftovers)))
    if isinstance(scratch_dir, Path):
        _sweep(scratch_dir, clock() - STALE_SCRATCH)
    return found


def _sweep(scratch_dir: Path, before: float) -> None:
    """Remove scratch dirs last touched before ``before`` (a crash between a run's recorded
    end and its cleanup); a live run's dir is younger than any action's timeout."""
    if not scratch_dir.is_dir():
        return
    for leftover in scratch_dir.iterdir():
        try:
            if leftover.stat().st_mtime < before:
                shutil.rmtree(leftover, ignore_errors=True)
        except OSError:
            continue


def settle_leftovers(scratch: Path, wait: float) -> list[str]:
    """Wait (bounded) for the processes of the run whose scratch dir this is, then stop what
    still runs, with its Ansible workers; what happened, one line per process."""
    marker = f"@{scratch / 'vars.yml'}"
    named = {proc.pid: proc for proc in _processes_naming(marker)}
    # Ansible's forks carry their parent's command line: the ones whose parent is named too.
    found = [proc for proc in named.values() if _parent_pid(proc) not in named]
    if not found:
        return []
    # Ansible's workers call setsid(): noted now, they would outlive their parent's kill.
    family = {p.pid: p for main in found for p in _with_children(main)}
    started = time.monotonic()
    psutil.wait_procs(found, timeout=max(0.0, wait))
    lines = []
    for main in found:
        if not main.is_running():
            took = time.monotonic() - started
            lines.append(
                f"ansible-playbook pid {main.pid} left by the engine ended within {took:.0f}s"
            )
            continue
        lines.append(
            f"ansible-playbook pid {main.pid} left by the engine still ran after "
            f"{time.monotonic() - started:.0f}s: stopped"
        )
    _stop(list(family.values()))
    return lines


def finished_result(run: InFlight, scratch: Path, now: float) -> RunResult | None:
    """The run's result from its recap event, if the playbook got that far; else None."""
    stats = None
    for event in _events(Path(run.artifact_dir) / "artifacts" / run.ident, scratch):
        if event.get("event") == "playbook_on_stats":
            data = event.get("event_data")
            stats = host_stats(data) if isinstance(data, dict) else None
    if stats is None:
        return None
    bad = any(s.failures or s.unreachable for s in stats.values())
    missing = [host for host in run.hosts if host not in stats]
    return RunResult(
        ident=run.ident,
        status="failed" if bad or missing else "successful",
        rc=None,
        artifact_dir=str(Path(run.artifact_dir) / "artifacts" / run.ident),
        started_at=run.started_at,
        ended_at=now,
        stats=stats,
        error="the playbook finished while the engine was down (its recap read back at start)",
    )


def _events(artifact_dir: Path, scratch: Path) -> Iterator[dict[str, Any]]:
    """Processed events, then the raw ones runner had not processed yet."""
    paths = [*sorted((artifact_dir / "job_events").glob("*.json"))]
    paths += sorted((scratch / "job_events").glob("*-partial.json"))
    for path in paths:
        try:
            event = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # half-written when the engine died
        if isinstance(event, dict):
            yield event


def _processes_naming(marker: str) -> Iterator[psutil.Process]:
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = proc.info.get("cmdline") or []
        if any(marker in part for part in cmdline):
            yield proc


def _parent_pid(proc: psutil.Process) -> int | None:
    try:
        return proc.ppid()
    except psutil.Error:
        return None


def _with_children(proc: psutil.Process) -> list[psutil.Process]:
    try:
        return [proc, *proc.children(recursive=True)]
    except psutil.Error:
        return [proc]


def _stop(procs: list[psutil.Process]) -> None:
    """SIGTERM, then SIGKILL what is left after 5 s (each process group when it leads one)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        alive = [p for p in procs if p.is_running()]
        for proc in alive:
            try:
                if os.getpgid(proc.pid) == proc.pid:
                    os.killpg(proc.pid, sig)
                else:
                    proc.send_signal(sig)
            except (psutil.Error, ProcessLookupError):
                continue
        _, still = psutil.wait_procs(alive, timeout=5)
        if not still:
            return
