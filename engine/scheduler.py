"""Run the engine's tick on an interval with APScheduler: never two ticks at once."""

from __future__ import annotations

import logging
import threading
from datetime import UTC, datetime

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from engine.loop import Engine

log = logging.getLogger("autosre.scheduler")


def _safe_tick(engine: Engine) -> None:
    try:
        report = engine.tick()
    except Exception:
        # One broken tick must not stop the loop; the next one starts afresh.
        log.exception("tick failed")
        return
    log.debug("tick took %.3fs", report.duration)


def run_until(engine: Engine, *, interval: float, stop: threading.Event) -> None:
    """Tick every interval until stop is set; an overlapping tick is skipped and logged."""
    scheduler = BackgroundScheduler(timezone=UTC)
    # APScheduler's own "skipped" warning is noisy; ours says what it means.
    logging.getLogger("apscheduler").setLevel(logging.ERROR)

    def on_skip(event: JobExecutionEvent) -> None:
        log.warning("tick skipped: the previous tick is still running (interval %.1fs)", interval)

    scheduler.add_listener(on_skip, EVENT_JOB_MAX_INSTANCES)
    scheduler.add_job(
        _safe_tick,
        IntervalTrigger(seconds=interval),
        args=[engine],
        id="tick",
        max_instances=1,
        coalesce=True,
        next_run_time=datetime.now(UTC),
        misfire_grace_time=max(1, int(interval)),
    )
    scheduler.start()
    try:
        stop.wait()
    finally:
        scheduler.shutdown(wait=True)
