"""Rate limits: would one more run exceed a limit of the policy's ``rate_limits:``? Pure.

A run counts once per host it touches (a host-run): one batched engine run on three
hosts counts as three, like three runs by hand. A limit is kept when, for every window
``(t - per, t]`` ending at a new run's time ``t``, the host-runs already in it and those
of the new run together are at most ``max``; checked at each new run, in time order, that
keeps every sliding window of the limit within ``max``. The runs are read from the store
(engine/read/run_counts.py), so limits hold across restarts, replicas, the CLI and the UI;
``Accepted`` adds the runs the engine allowed this tick that the store does not show yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from engine.policy.rate_limit_schema import RateLimit, window_text

RULE = "rate_limit"  # the decision's rule when a limit escalates


@dataclass(frozen=True, slots=True)
class RunMark:
    """One host-run: when, which action, on which host; ``engine``: the engine's own run."""

    at: float
    action: str
    host: str
    engine: bool = False


@dataclass(frozen=True, slots=True)
class LimitHit:
    """A limit one more run would break: how many runs already count, since when."""

    limit: RateLimit
    action: str
    host: str | None  # a host limit's host
    count: int
    adding: int  # host-runs the refused run would add
    since: float | None  # the oldest counted run
    now: float

    @property
    def reason(self) -> str:
        """'rate limit: restart_nginx on web1, 3 per 1h, reached (3 runs since 10:02 UTC)'."""
        limit = self.limit
        what = limit.action or ("every action" if limit.scope != "action" else self.action)
        where = {"host": self.host, "action": "all hosts", "fleet": "the fleet"}[limit.scope]
        head = f"rate limit: {what} on {where}, {limit.max} per {window_text(limit.per)}"
        runs = f"{self.count} run{'s' if self.count != 1 else ''}"
        if self.since is not None:
            runs += f" since {_clock(self.since, self.now)}"
        if self.count >= limit.max:
            return f"{head}, reached ({runs})"
        return f"{head}, would be exceeded ({runs}; this run adds {self.adding})"


def longest(limits: Sequence[RateLimit]) -> float:
    """The longest window: how far back the runs must be read (0: no limits)."""
    return max((limit.per for limit in limits), default=0.0)


def first_hit(
    limits: Sequence[RateLimit],
    marks: Iterable[RunMark],
    *,
    action: str,
    hosts: Sequence[str],
    now: float,
) -> LimitHit | None:
    """The first limit (in policy order) that a run of ``action`` on ``hosts`` at ``now``
    would exceed, or None when every limit allows it."""
    wanted = sorted(set(hosts))
    applying = [limit for limit in limits if limit.applies_to(action)]
    if not applying or not wanted:
        return None
    # Runs stamped after now (another replica's clock) count too: never fewer than true.
    recent = [m for m in marks if m.at > now - longest(applying)]
    for limit in applying:
        start = now - limit.per
        counted = [m for m in recent if m.at > start and limit.applies_to(m.action)]
        if limit.scope == "host":
            for host in wanted:
                on_host = [m.at for m in counted if m.host == host]
                if len(on_host) + 1 > limit.max:
                    return LimitHit(limit, action, host, len(on_host), 1, min(on_host), now)
            continue
        times = [m.at for m in counted]
        if len(times) + len(wanted) > limit.max:
            since = min(times) if times else None
            return LimitHit(limit, action, None, len(times), len(wanted), since, now)
    return None


class Accepted:
    """Runs the engine allowed in this tick: launched at the tick's end, so the store may
    not show them yet when the next verdict of the same tick is judged. A tick is known
    by its time (ticks are serial, at distinct times; a frozen clock only over-counts)."""

    def __init__(self) -> None:
        self._tick = float("nan")
        # (the run, how many engine runs of its host and action the store showed then)
        self._pending: list[tuple[RunMark, int]] = []

    def merged(self, stored: Sequence[RunMark], now: float) -> list[RunMark]:
        """The stored runs and those accepted this tick that the store does not show yet."""
        if now != self._tick:  # a new tick: the last one's runs were recorded or never ran
            self._tick, self._pending = now, []
        shown = _engine_runs(stored)
        waiting = [m for m, before in self._pending if shown.get((m.host, m.action), 0) <= before]
        return [*stored, *waiting]

    def add(self, action: str, hosts: Sequence[str], stored: Sequence[RunMark], now: float) -> None:
        """Count a run allowed now; it stops counting here once the store shows it (a new
        engine run of its host and action) or the tick ends."""
        if now != self._tick:
            self._tick, self._pending = now, []
        shown = _engine_runs(stored)
        for host in sorted(set(hosts)):
            mark = RunMark(now, action, host, engine=True)
            self._pending.append((mark, shown.get((host, action), 0)))


def _engine_runs(marks: Iterable[RunMark]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for mark in marks:
        if mark.engine:
            key = (mark.host, mark.action)
            counts[key] = counts.get(key, 0) + 1
    return counts


def _clock(at: float, now: float) -> str:
    """A run's time in UTC: the hour on the same day, with the date otherwise."""
    when, today = datetime.fromtimestamp(at, tz=UTC), datetime.fromtimestamp(now, tz=UTC)
    return when.strftime("%H:%M UTC" if when.date() == today.date() else "%b %d %H:%M UTC")
