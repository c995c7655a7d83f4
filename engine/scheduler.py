"""Run the engine's tick on an interval with APScheduler: never two ticks at once.

While a host's signal rises, the sample that completes its sustain window may come at any
moment of the interval: from the earliest moment it can, the ticks come every ``poll``
seconds (a tenth of the scrape step), so the decision waits for the sample, not for the grid.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger

from engine.collector import CollectorSchedule
from engine.loop import Engine
from engine.store_outage import store_label
from engine.tick_guard import TickGuard

log = logging.getLogger("autosre.scheduler")
TICK = "tick"  # the job's id


def next_tick_at(now: float, regular: float, due: float | None, poll: float) -> float | None:
    """When to tick next instead of ``regular`` (None: keep it): a poll once a rising host's
    window may complete before the regular tick."""
    if due is None or due >= regular:
        return None
    return min(regular, max(due, now + poll))


def _reload_between_ticks(reload: Callable[[], object] | None) -> None:
    """A policy reload, if one was asked for, before the tick: never inside one."""
    if reload is None:
        return
    try:
        reload()
    except Exception as exc:  # the store is away, say: the tick guard tells that; ask again
        log.debug("policy reload check skipped: %s", exc)


def _safe_tick(
    guard: TickGuard,
    scheduler: BaseScheduler,
    collector: CollectorSchedule,
    reload: Callable[[], object] | None = None,
) -> None:
    _reload_between_ticks(reload)
    try:
        report = guard.tick()
    finally:
        collector.after_tick()  # between ticks, never inside one (engine/collector.py)
    if report is None:
        return  # failed (and told, if it is news): the next tick starts afresh
    log.debug("tick took %.3fs", report.duration)
    job = scheduler.get_job(TICK)
    if job is None or job.next_run_time is None:
        return
    at = next_tick_at(time.time(), job.next_run_time.timestamp(), report.due, report.poll)
    if at is not None:
        job.modify(next_run_time=datetime.fromtimestamp(at, UTC))


def run_until(
    engine: Engine,
    *,
    interval: float,
    stop: threading.Event,
    housekeeping: Callable[[], object] | None = None,
    housekeeping_every: float = 3600.0,
    collector: CollectorSchedule | None = None,
    reload: Callable[[], object] | None = None,
) -> None:
    """Tick every interval until stop is set; an overlapping tick is skipped (and told once
    per slow tick), a failed one is told as engine/tick_guard.py says. ``housekeeping``
    (pruning, say) runs every ``housekeeping_every`` seconds, first a few minutes in. The
    garbage collector runs between ticks (engine/collector.py); ``reload`` (the policy's,
    engine/policy_reload.py) runs before each tick, in the tick's own job."""
    collector = collector or CollectorSchedule()
    scheduler = BackgroundScheduler(timezone=UTC)
    # APScheduler's own "skipped" warning is noisy; ours says what it means.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)
    guard = TickGuard(engine, store=lambda: store_label(engine.components.sessions))

    def on_skip(event: JobExecutionEvent) -> None:
        if event.job_id == TICK:
            guard.overlapped(interval)

    scheduler.add_listener(on_skip, EVENT_JOB_MAX_INSTANCES)
    scheduler.add_job(
        _safe_tick,
        IntervalTrigger(seconds=interval),
        args=[guard, scheduler, collector, reload],
        id=TICK,
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
        misfire_grace_time=max(1, int(interval)),
    )
    if housekeeping is not None:
        scheduler.add_job(
            housekeeping,
            IntervalTrigger(seconds=housekeeping_every),
            id="housekeeping",
            max_instances=1,
            coalesce=True,
            # Not at start: an engine that keeps restarting never prunes in a loop.
            next_run_time=datetime.now(UTC) + timedelta(minutes=5),
        )
    collector.start()
    scheduler.start()
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
        collector.stop()
