"""Retention: old run dirs and old closed incidents pruned by the policy's ``retention``.

One plan serves the dry run and the real one, so the dry run's numbers are what the real
run then removes. What may go: run dirs older than ``artifacts.max_age`` or beyond the
newest ``artifacts.keep``, and incidents closed longer ago than ``incidents.max_age``
(engine/prune_incidents.py says with what). Never a run in flight, an incident not yet
closed, or what such an incident refers to; never anything the engine still counts (an
incident stays at least as long as the flapping and failure-memory windows). A run whose
dir is pruned keeps its row. One journal event says who pruned what, and when.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import AutoSREError
from engine.policy.schema import Policy
from engine.prune_dirs import RunDir, list_run_dirs, measure, remove
from engine.prune_incidents import (
    TABLES,
    Batch,
    count_batch,
    delete_batch,
    oldest_incident,
    plan_batches,
    protected_idents,
)
from engine.prune_report import PruneReport, summary
from engine.record.events import Journal
from engine.store.models import PlaybookRun
from engine.store.schema import describe
from engine.timeutil import to_dt, to_ts

if TYPE_CHECKING:
    from engine.components import Components

log = logging.getLogger("autosre.prune")
PRUNE_EVERY = 3600.0  # the engine's own prune: hourly is plenty for limits counted in days
# A run dir with no row yet may be a run being recorded right now: left alone this long.
GRACE = 3600.0
PROGRESS_EVERY = 1000  # a line of progress per this many items
Progress = Callable[[str], None]


@dataclass(frozen=True, slots=True)
class Plan:
    """What a prune removes: incident batches (with row counts) and run dirs (with sizes)."""

    batches: list[Batch]
    rows: dict[str, int]
    dirs: list[tuple[RunDir, int]]
    refused: list[str]
    oldest_run_dir: float | None
    oldest_incident: float | None


def incident_cutoff(policy: Policy, now: float) -> float | None:
    """Incidents closed before this may go (None: kept for ever); never within a window
    the engine counts back over."""
    age = policy.retention.incidents.max_age
    if age is None:
        return None
    rem = policy.remediation
    return now - max(age, rem.flapping.window, rem.failure_memory.window)


def _run_times(session: Session, names: list[str]) -> dict[str, float]:
    """When each named run was created, for the run dirs that have a row."""
    found: dict[str, float] = {}
    for start in range(0, len(names), 500):
        chunk = names[start : start + 500]
        rows = session.execute(
            select(PlaybookRun.ident, PlaybookRun.created_at).where(PlaybookRun.ident.in_(chunk))
        )
        found.update((ident, to_ts(created)) for ident, created in rows)
    return found


def _pick_dirs(
    dirs: list[RunDir],
    times: dict[str, float],
    protected: set[str],
    going: set[str],
    policy: Policy,
    now: float,
) -> tuple[list[RunDir], float | None]:
    """The run dirs to remove, and when the oldest one that stays was made."""
    limits = policy.retention.artifacts
    doomed = [d for d in dirs if d.name in going and d.name not in protected]
    rest = [d for d in dirs if d.name not in going or d.name in protected]
    rest.sort(key=lambda d: (times.get(d.name, d.mtime), d.name), reverse=True)
    oldest: float | None = None
    for rank, found in enumerate(rest):
        at = times.get(found.name, found.mtime)
        recorded = found.name in times
        too_old = limits.max_age is not None and at < now - limits.max_age
        too_many = limits.keep is not None and rank >= limits.keep
        young_orphan = not recorded and now - found.mtime < GRACE
        if found.name in protected or young_orphan or not (too_old or too_many):
            oldest = at if oldest is None else min(oldest, at)
        else:
            doomed.append(found)
    return doomed, oldest


def plan_prune(
    sessions: sessionmaker[Session], runs_dir: Path, policy: Policy, *, now: float
) -> Plan:
    """What a prune at ``now`` removes, found without changing anything."""
    cutoff = incident_cutoff(policy, now)
    dirs, refused = list_run_dirs(runs_dir)
    with sessions() as session:
        batches = [] if cutoff is None else plan_batches(session, to_dt(cutoff))
        rows = dict.fromkeys(TABLES, 0)
        for batch in batches:
            for table, count in count_batch(session, batch).items():
                rows[table] += count
        going_incidents = {i for b in batches for i in b.incidents}
        opened = oldest_incident(session, going_incidents)
        protected = protected_idents(session)
        times = _run_times(session, [d.name for d in dirs])
    going = {ident for b in batches for ident in b.run_idents}
    doomed, oldest_dir = _pick_dirs(dirs, times, protected, going, policy, now)
    sized = [(d, measure(d.path)) for d in sorted(doomed, key=lambda d: d.name)]
    return Plan(
        batches=batches,
        rows=rows,
        dirs=sized,
        refused=refused,
        oldest_run_dir=oldest_dir,
        oldest_incident=None if opened is None else to_ts(opened),
    )


def _tell(progress: Progress | None, done: int, total: int, what: str, step: int) -> None:
    if progress is not None and total >= PROGRESS_EVERY and done // PROGRESS_EVERY > step:
        progress(f"{done} of {total} {what}")


def _delete_incidents(
    sessions: sessionmaker[Session], plan: Plan, progress: Progress | None
) -> dict[str, int]:
    removed = dict.fromkeys(TABLES, 0)
    total = sum(len(b.incidents) for b in plan.batches)
    for batch in plan.batches:
        step = removed["incidents"] // PROGRESS_EVERY
        with sessions.begin() as session:  # one batch, one transaction: no orphan ever
            for table, count in delete_batch(session, batch).items():
                removed[table] += count
        _tell(progress, removed["incidents"], total, "incidents deleted", step)
    return removed


def _remove_dirs(plan: Plan, progress: Progress | None) -> tuple[int, int, list[str]]:
    count = size = 0
    failed: list[str] = []
    for done, (found, nbytes) in enumerate(plan.dirs, start=1):
        problem = remove(found.path)
        if problem is None:
            count, size = count + 1, size + nbytes
        else:
            failed.append(problem)
        _tell(progress, done, len(plan.dirs), "run dirs removed", (done - 1) // PROGRESS_EVERY)
    return count, size, failed


def prune(
    sessions: sessionmaker[Session],
    runs_dir: Path,
    policy: Policy,
    *,
    journal: Journal | None,
    now: float,
    by: str,
    dry_run: bool = False,
    progress: Progress | None = None,
) -> PruneReport:
    """Prune by the policy's retention (or, dry, only say what would go); one journal
    event records what went. ``journal`` may be None only for a dry run."""
    plan = plan_prune(sessions, runs_dir, policy, now=now)
    rows, count, size = plan.rows, len(plan.dirs), sum(n for _, n in plan.dirs)
    failed: list[str] = []
    if not dry_run:
        if journal is None:
            raise ValueError("a real prune needs the journal to record it")
        rows = _delete_incidents(sessions, plan, progress)
        count, size, failed = _remove_dirs(plan, progress)
    report = PruneReport(
        dry_run=dry_run,
        by=by,
        at=now,
        run_dirs=count,
        bytes=size,
        incidents=rows["incidents"],
        rows=rows,
        oldest_run_dir=plan.oldest_run_dir,
        oldest_incident=plan.oldest_incident,
        refused=plan.refused,
        failed=failed,
    )
    if journal is not None and not dry_run and report.removed_anything:
        journal.event(now, "pruned", summary(report), data=report.as_dict())
    return report


def scheduled_prune(components: Components) -> PruneReport | None:
    """The engine's periodic prune: never raises, tells a failure in one log line."""
    try:
        report = prune(
            components.sessions,
            components.settings.runs_dir,
            components.policy,
            journal=components.recorder.journal,
            now=time.time(),
            by="engine",
        )
    except (AutoSREError, SQLAlchemyError, OSError) as exc:
        reason = describe(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
        log.warning("prune failed, tried again in %.0fs: %s", PRUNE_EVERY, reason)
        return None
    if report.removed_anything:
        log.info("%s", summary(report))
    for problem in report.failed:
        log.warning("prune: run dir left: %s", problem)
    if report.refused:
        log.warning("prune: symlinks in the runs dir left alone: %s", ", ".join(report.refused))
    return report
