"""Staged runs on the write side: staged before the preflight starts, released (with the
decision it carries out) before the release is given, or discarded having changed nothing.
What a crash leaves staged is discarded by ``RunRecords.recover_interrupted``.
"""

from __future__ import annotations

from collections.abc import Sequence

from engine.errors import IllegalMoveError
from engine.record.events import Journal
from engine.record.runs import STAGED_RUN, new_run, remediating, stats_dict
from engine.store.models import PlaybookRun
from engine.timeutil import to_dt
from engine.types import RunRequest, RunResult


class StagedRunRecords:
    """Stages, releases and discards the engine's staged runs."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def stage(self, request: RunRequest, *, ident: str, artifact_dir: str, at: float) -> int:
        """Record a staged run (its read-only preflight starts; it holds for a verdict)."""
        journal = self.journal
        with journal.sessions() as session:
            run = new_run(
                request,
                ident=ident,
                artifact_dir=artifact_dir,
                trigger="engine",
                requested_by="engine",
                status=STAGED_RUN,
                at=at,
            )
            session.add(run)
            session.flush()
            event = journal.add(
                session,
                at,
                "run_staged",
                f"staged {request.action} on {', '.join(request.hosts)}: its read-only "
                "preflight runs now, and it changes nothing unless the verdict releases it",
                run_id=run.id,
                data={"ident": ident},
            )
            journal.commit(session, [event])
            return run.id

    def release(
        self, run_id: int, *, action: str, at: float, decisions: Sequence[tuple[int, int]]
    ) -> None:
        """Record a staged run as released (running, for these decisions) before the release."""
        journal = self.journal
        with journal.sessions() as session:
            run = session.get_one(PlaybookRun, run_id)
            if run.status != STAGED_RUN:
                raise IllegalMoveError(f"run {run.ident} is {run.status}, not staged")
            run.status = "running"
            events = [
                journal.add(
                    session,
                    at,
                    "run_released",
                    f"run {run.ident} released: the verdict is to run {action}",
                    run_id=run.id,
                )
            ]
            events += remediating(journal, session, run, decisions, at)
            journal.commit(session, events)

    def discarded(
        self, run_id: int, result: RunResult, why: str, *, status: str = "discarded"
    ) -> None:
        """Record a staged run that ended without a release: it changed nothing. ``status``:
        "canceled" when a person stopped it."""
        journal = self.journal
        with journal.sessions() as session:
            run = session.get_one(PlaybookRun, run_id)
            run.status = status
            run.rc = result.rc
            run.error = journal.optional_text(f"{why} (run {result.status}, rc {result.rc})")
            run.ended_at = to_dt(result.ended_at)
            run.stats = {host: stats_dict(s) for host, s in result.stats.items()}
            event = journal.add(
                session,
                result.ended_at,
                "run_discarded",
                f"staged run {run.ident} discarded: {why}",
                run_id=run_id,
                data={"stats": run.stats},
            )
            journal.commit(session, [event])
