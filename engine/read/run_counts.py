"""The runs that count toward rate limits (engine/policy/rate_limits.py): one query over
the longest window, one mark per host a run touched.

Every run counts, the engine's, by hand or approved, however it ended (it may have changed
the host before failing). Left out: check-mode runs and staged runs not yet released or
discarded (neither changed anything). A released staged run counts from its staging.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.policy.rate_limits import RunMark
from engine.record.runs import STAGED_RUN
from engine.store.models import PlaybookRun
from engine.timeutil import to_dt, to_ts

# Changed nothing: a staged run waiting for its verdict, or one that never got it.
NOT_COUNTED = (STAGED_RUN, "discarded")


def run_marks(sessions: sessionmaker[Session], *, since: float) -> list[RunMark]:
    """Every counted host-run recorded after ``since`` (by ix_runs_created_at)."""
    query = select(
        PlaybookRun.action, PlaybookRun.hosts, PlaybookRun.created_at, PlaybookRun.trigger
    ).where(
        PlaybookRun.created_at > to_dt(since),
        PlaybookRun.check_mode.is_(False),
        PlaybookRun.status.not_in(NOT_COUNTED),
    )
    with sessions() as session:
        rows = session.execute(query).all()
    return [
        RunMark(to_ts(created), action, str(host), engine=trigger == "engine")
        for action, hosts, created, trigger in rows
        for host in hosts or ()
    ]
