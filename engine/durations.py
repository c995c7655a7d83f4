"""Parse human durations ("500ms", "10s", "5m", "1h", "2d", or plain seconds)."""

from __future__ import annotations

import math
import re

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PATTERN = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")


def parse_duration(value: object) -> float:
    """Return seconds for a duration string or number; raise ValueError naming the problem."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration such as 10s or 5m, got {value!r}")
    if isinstance(value, int | float):
        seconds = float(value)
    elif isinstance(value, str):
        match = _PATTERN.match(value)
        if match is None:
            raise ValueError(f"expected a duration such as 10s or 5m, got {value!r}")
        seconds = float(match.group(1)) * _UNITS[match.group(2) or "s"]
    else:
        raise ValueError(f"expected a duration such as 10s or 5m, got {type(value).__name__}")
    if seconds < 0 or not math.isfinite(seconds):
        raise ValueError(f"duration must be a finite, non-negative number of seconds: {value!r}")
    return seconds


def format_duration(seconds: float) -> str:
    """Render seconds the way PromQL wants a range ("1500ms", "15s", "5m")."""
    millis = round(seconds * 1000)
    if millis % 60000 == 0 and millis >= 60000:
        return f"{millis // 60000}m"
    if millis % 1000 == 0:
        return f"{millis // 1000}s"
    return f"{millis}ms"
