"""How fresh what the UI shows is, on every page: the engine's last tick, the age of the
metrics, hosts without data, the store; and how many incidents need a human (the menu).

The bar is drawn with each page and polled (``/status/bar``, ``/status/needs-you``) by
static/app.js. A tick is late as /healthz decides (webui/health.py); metrics are stale when
the newest sample the engine published is older than the policy lets a host's be before it
counts as UNKNOWN. The engine does not publish Prometheus' own state: hosts without data
(UNKNOWN, from the host states) stand for it. A store that does not answer is a 503 page
with the banner, not a 500.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime

from flask import Blueprint, render_template, request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import InventoryError, PolicyError
from engine.read.engine_stats import engine_stats_in, host_freshness_in
from engine.read.needs_you import count_needs_you
from engine.record.live import describe_error
from engine.timeutil import iso
from webui.db import get_components, get_sessions, get_settings
from webui.health import tick_late
from webui.security import api_error, login_required

log = logging.getLogger("autosre.webui")
bp = Blueprint("freshness", __name__)

POLL_SECONDS = 5


@dataclass(frozen=True)
class Freshness:
    """What the bar shows; ages in seconds (None: never published)."""

    store_error: str | None = None
    tick_age: float | None = None
    tick_late: bool = False
    metrics_age: float | None = None
    metrics_stale: bool = False
    hosts: int = 0
    no_data: int = 0

    @property
    def problems(self) -> list[str]:
        """One line per thing that is stale or down (the banner); empty when all is well."""
        if self.store_error is not None:
            return [f"The store is not answering ({self.store_error}): nothing here is current."]
        found = []
        if self.tick_late:
            found.append(
                "The engine has not published a tick yet."
                if self.tick_age is None
                else f"The engine's last tick was {age(self.tick_age)} ago: it may be stopped."
            )
        if self.metrics_stale:
            found.append(
                "No host has metrics: states below are not current."
                if self.metrics_age is None
                else f"Metrics are {age(self.metrics_age)} old: states below are not current."
            )
        return found


def age(seconds: float) -> str:
    """A short age: "42 s", "3 min", "2.5 h", "4 d"."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.0f} d"


def read_freshness(
    sessions: sessionmaker[Session], *, interval: float, staleness: float, now: float
) -> Freshness:
    """The bar's facts from the store as of ``now``; the store's error when it does not answer.

    ``interval`` is the engine's tick interval; ``staleness`` how old a host's newest sample
    may be before the engine calls it UNKNOWN.
    """
    try:
        with sessions() as session:
            stats = engine_stats_in(session)
            hosts = host_freshness_in(session)
    except SQLAlchemyError as exc:
        return Freshness(store_error=describe_error(exc))
    lag = stats.publish_every or 0.0  # stats and host rows are written every few seconds
    tick_age = None if stats.last_tick is None else max(0.0, now - stats.last_tick)
    late = tick_late(tick_age, interval, stats.publish_every)
    newest = hosts.newest_sample
    metrics_age = None if newest is None else max(0.0, now - newest.timestamp())
    if metrics_age is None:
        metrics_stale = hosts.hosts > 0  # hosts published, none with a sample
    else:
        metrics_stale = metrics_age > staleness + interval + lag
    return Freshness(
        tick_age=tick_age,
        tick_late=late,
        metrics_age=metrics_age,
        metrics_stale=metrics_stale,
        hosts=hosts.hosts,
        no_data=hosts.no_data,
    )


def staleness_limit(interval: float) -> float:
    """The policy's longest staleness over its signal kinds (3 intervals without a policy)."""
    try:
        rules = get_components().policy.signals.values()
    except (PolicyError, InventoryError):
        return 3 * interval
    return max((rule.staleness for rule in rules), default=3 * interval)


def current_freshness() -> Freshness:
    """The bar's facts for this request."""
    interval = get_settings().interval
    return read_freshness(
        get_sessions(), interval=interval, staleness=staleness_limit(interval), now=time.time()
    )


def needs_you_count() -> int | None:
    """How many incidents need a human; None when the store does not answer."""
    try:
        return count_needs_you(get_sessions())
    except SQLAlchemyError:
        return None


@bp.app_context_processor
def _helpers() -> dict[str, object]:
    # Functions, not values: only pages that draw the bar (base.html) pay for the queries.
    return {
        "freshness": current_freshness,
        "needs_you_count": needs_you_count,
        "status_poll_every": POLL_SECONDS,
        "now_iso": lambda: iso(datetime.now(tz=UTC)),
    }


bp.add_app_template_filter(age, "age")


@bp.get("/status/bar")
@login_required
def bar() -> ResponseReturnValue:
    """The freshness bar and its banner (HTML fragment), for polling."""
    return render_template("dashboard/_status_bar.html", fresh=current_freshness())


@bp.get("/status/needs-you")
@login_required
def needs_you_badge() -> ResponseReturnValue:
    """The menu's count of incidents that need a human (HTML fragment), for polling."""
    return render_template("dashboard/_needs_you_badge.html", count=needs_you_count())


@bp.app_errorhandler(OperationalError)
@bp.app_errorhandler(InterfaceError)
def store_down(error: DBAPIError) -> ResponseReturnValue:
    """A request the store could not serve (down, unreachable): 503 with what went wrong
    (the driver's first line, no SQL) and the banner, not a 500. Other errors stay 500s."""
    reason = describe_error(error)
    log.warning("%s %s: store not answering: %s", request.method, request.path, reason)
    if request.path.startswith("/api/"):
        return api_error(503, "the store is not answering")
    fresh = Freshness(store_error=reason)
    description = "The store is not answering; try again in a moment."
    page = render_template(
        "error.html", code=503, name="Store unavailable", description=description, store_down=fresh
    )
    return page, 503
