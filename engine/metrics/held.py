"""The windows of the last fetch, kept so that the next one asks only for what is new.

Pure. With 10 s ticks and 15 s steps only the newest point or two of a window are new, yet
a full range query makes Prometheus compute (and the engine decode) every point of every
host's window again. ``HeldWindows`` says where the next query may start instead: on the
full query's own grid (so the newest points are exactly the full query's), at least
``REFETCH_STEPS`` steps before the previous fetch, because the newest points change as late
scrapes arrive, and at least the staleness limit before now, so that the newest sample a
tick reads is the full query's own. The held points before that start are kept, the
re-fetched ones replace the rest, and everything older than the lookback is dropped.

The held points were evaluated on an earlier tick's grid: each is a value the full query
gave at that tick, at most one step away from where today's full query would place one.
So a hole in the data looks up to a step longer or shorter than on today's grid: one as
long as the evaluator's bridging limit (the staleness limit), give or take that step, may
break a high run in one window and not in the other, and the run then restarts after the
hole (tests/engine/test_metrics_incremental.py keeps such cases). Two full queries on
different ticks' grids differ the same way.
When the last fetch is at most a step old (the usual tick), the newest value alone will do:
an instant query at ``now`` gives the full query's newest point exactly, and the grid has no
other point after the last fetch. It is appended to the held windows, so a window then
holds one value per tick as Prometheus gave it at that tick (a scrape that lands later does
not change a held point; the full query's newest point has the same lag). A slower tick
asks for the newest steps as above.
Any doubt means a full query: the first fetch, a failure, a clock going back, a previous
fetch older than half the lookback, a change of hosts, and a held point the re-fetched
steps no longer have (a restarted server that lost data, a target gone down): the new
answer must cover, within a step, every held point it replaces.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping, Sequence

from engine.metrics.window import Window
from engine.types import Sample

REFETCH_STEPS = 2  # newest steps asked again: a scrape that lands late changes them
_TS_SLACK = 0.001  # Prometheus evaluates at millisecond resolution (as matrix.py)


def millis(seconds: float) -> int:
    """A time as Prometheus reads it: whole milliseconds."""
    return round(seconds * 1000)


def as_param(ms: int) -> str:
    """Milliseconds as a query parameter in seconds, exactly (``1700000000.123``)."""
    sign, ms = ("-", -ms) if ms < 0 else ("", ms)
    return f"{sign}{ms // 1000}.{ms % 1000:03d}"


class HeldWindows:
    """Per host, the samples of the last successful fetch, and when it was."""

    def __init__(self, *, lookback: float, step: float, stale_after: float | None = None) -> None:
        self._lookback_ms = millis(lookback)
        self._step_ms = max(1, millis(step))
        # The newest sample a tick reads is always the full query's own while it is fresh:
        # everything within the staleness limit is asked again (the policy's default is
        # three steps; four is the shipped 1m at 15 s).
        self._fresh_ms = millis(stale_after) if stale_after is not None else 4 * self._step_ms
        self._windows: Mapping[str, Window] | None = None
        self._at = -math.inf

    def forget(self) -> None:
        """Drop everything held: the next fetch is a full query."""
        self._windows, self._at = None, -math.inf

    def full_start(self, now: float) -> int:
        """Where a full query for ``now`` starts (ms)."""
        return millis(now) - self._lookback_ms

    def newest_only(self, now: float) -> bool:
        """True when the newest value alone (an instant query at ``now``) completes the held
        windows: the last fetch is at most a step old, so the full query's grid has no
        point after it but ``now``'s own."""
        if self._windows is None:
            return False
        gap = millis(now) - millis(self._at)
        return 0 < gap <= self._step_ms

    def since(self, now: float) -> int | None:
        """Where the query for ``now`` may start (ms) to complete the held windows, or None
        when only a full query will do."""
        if self._windows is None:
            return None
        at, end = millis(self._at), millis(now)
        if end <= at or end - at > self._lookback_ms // 2:
            return None
        start = self.full_start(now)
        # On the full query's grid, so that the new points are exactly the full query's.
        newest = min(at - REFETCH_STEPS * self._step_ms, end - self._fresh_ms)
        steps = (newest - start) // self._step_ms
        return start + steps * self._step_ms if steps > 0 else None

    def merge(
        self, fresh: Mapping[str, Sequence[Sample]], since: int, now: float
    ) -> dict[str, Window] | None:
        """The held points from the full query's start up to ``since`` (ms), then the fresh
        ones (which start at ``since``): sorted, no timestamp twice. None when the fresh
        answer lacks what was held (see the module's docstring): ask in full."""
        held = self._windows or {}
        lo = self.full_start(now) / 1000 - _TS_SLACK
        cut = since / 1000 - _TS_SLACK
        step = self._step_ms / 1000
        merged: dict[str, Window] = {}
        for host, new in fresh.items():
            old = held.get(host)
            ts = old.timestamps if old is not None else ()
            if not ts or ts[-1] < lo:
                merged[host] = new if isinstance(new, Window) else Window.of(host, new)
                continue
            first = bisect_left(ts, lo) if ts[0] < lo else 0
            last = bisect_left(ts, cut, lo=first) if ts[-1] >= cut else len(ts)
            if last < len(ts) and (not new or new[0].ts > ts[last] + step):
                return None  # a replaced point has nothing fresh near it
            assert old is not None
            unchanged = not new and first == 0 and last == len(ts)
            merged[host] = old if unchanged else old.kept(first, last, new)
        return merged

    def keep(self, windows: Mapping[str, Sequence[Sample]], now: float) -> Mapping[str, Window]:
        """Hold a fetch's windows, as compact windows, and return them (never changed
        afterwards: they are shared with its batch)."""
        held = {
            host: window if isinstance(window, Window) else Window.of(host, window)
            for host, window in windows.items()
        }
        self._windows, self._at = held, now
        return held
