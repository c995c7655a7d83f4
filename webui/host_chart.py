"""The CPU chart's drawing, worked out on the server: a pure function from a ``History``
(engine/read/cpu_history.py) to the coordinates the SVG partial (_cpu_chart.html) prints.

Axes: time (ticks at round intervals, in UTC; static/chart.js shows them in the viewer's
zone) and percent (0 to 100). The policy's trigger is a dashed line; detections are
vertical lines, runs are bands from start to end, verifications are dots; each marker has
a tooltip (an SVG <title>) and links to its incident or run.
"""

from __future__ import annotations

import itertools
import math
from datetime import UTC, datetime
from typing import Any

from engine.read.cpu_history import History, Marker
from engine.timeutil import to_dt

WIDTH, HEIGHT = 800, 240
LEFT, RIGHT, TOP, BOTTOM = 44, 14, 12, 28  # margins of the plot inside the viewBox
TICK_STEPS = (60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800)
MAX_TICKS = 6
GAP_STEPS = 3  # samples further apart than this many usual steps: a gap, not a line
SIZE = 100.0  # the y axis: percent


def _iso(ts: float) -> str:
    return to_dt(ts).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc_label(ts: float, long_span: bool) -> str:
    return to_dt(ts).strftime("%m-%d %H:%M" if long_span else "%H:%M")


def time_ticks(start: float, end: float) -> list[float]:
    """Round times within [start, end]: at most MAX_TICKS, the interval a round one."""
    span = end - start
    step = next((s for s in TICK_STEPS if span / s <= MAX_TICKS), None)
    if step is None:
        step = math.ceil(span / MAX_TICKS / 86400) * 86400
    first = math.ceil(start / step) * step
    return [float(t) for t in range(int(first), int(end) + 1, int(step))]


class Scale:
    """Maps times and values onto the plot."""

    def __init__(self, start: float, end: float) -> None:
        self.start, self.span = start, max(end - start, 1e-9)
        self.x0, self.x1 = LEFT, WIDTH - RIGHT
        self.y0, self.y1 = TOP, HEIGHT - BOTTOM

    def x(self, ts: float) -> float:
        """The x of a time, clamped to the plot."""
        share = min(max((ts - self.start) / self.span, 0.0), 1.0)
        return round(self.x0 + share * (self.x1 - self.x0), 1)

    def y(self, value: float) -> float:
        """The y of a value (0 at the bottom, 100 at the top), clamped to the plot."""
        share = min(max(value / SIZE, 0.0), 1.0)
        return round(self.y1 - share * (self.y1 - self.y0), 1)


def segments(samples: tuple[tuple[float, float], ...], scale: Scale) -> list[str]:
    """Polyline point lists; a gap of more than GAP_STEPS usual steps starts a new one."""
    if not samples:
        return []
    steps = sorted(b[0] - a[0] for a, b in itertools.pairwise(samples))
    usual = steps[(len(steps) - 1) // 2] if steps else 0.0  # the lower median
    lines: list[list[str]] = [[]]
    for index, (ts, value) in enumerate(samples):
        if index and usual > 0 and ts - samples[index - 1][0] > GAP_STEPS * usual:
            lines.append([])
        lines[-1].append(f"{scale.x(ts)},{scale.y(value)}")
    return [" ".join(points) for points in lines]


def _marker(marker: Marker, scale: Scale, history: History) -> dict[str, Any]:
    when = datetime.fromtimestamp(marker.at, tz=UTC)
    outcome = (marker.outcome or "unknown").lower()
    view: dict[str, Any] = {
        "kind": marker.kind,
        "x": scale.x(marker.at),
        "outcome": outcome,
        "label": marker.label,
        "at": _iso(marker.at),
        "at_text": when.strftime("%Y-%m-%d %H:%M:%S UTC"),
        "incident_id": marker.incident_id,
        "run_ident": marker.run_ident,
    }
    if marker.kind == "run":
        end = marker.end if marker.end is not None else history.end
        view["x_end"] = max(scale.x(end), view["x"] + 2)  # a short run still shows
        view["end"] = None if marker.end is None else _iso(marker.end)
    return view


def chart_view(history: History, *, title: str = "CPU") -> dict[str, Any]:
    """Everything the SVG partial prints for this history."""
    scale = Scale(history.start, history.end)
    long_span = history.end - history.start > 86400
    threshold = history.threshold
    return {
        "title": title,
        "host": history.host,
        "width": WIDTH,
        "height": HEIGHT,
        "plot": {"x0": scale.x0, "x1": scale.x1, "y0": scale.y0, "y1": scale.y1},
        "lines": segments(history.samples, scale),
        "points": len(history.samples),
        "yticks": [{"y": scale.y(v), "label": f"{v:g}%"} for v in (0, 25, 50, 75, 100)],
        "xticks": [
            {"x": scale.x(t), "at": _iso(t), "label": _utc_label(t, long_span)}
            for t in time_ticks(history.start, history.end)
        ],
        "long_span": long_span,
        "threshold": None
        if threshold is None
        else {"y": scale.y(threshold), "label": f"trigger {threshold:g}%"},
        "markers": [_marker(m, scale, history) for m in history.markers],
        "source": history.source,
        "unavailable": history.unavailable,
        "start": _iso(history.start),
        "end": _iso(history.end),
    }
