"""What a run left behind, read back: per-host recaps and job events."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.types import HostRunStats

# ansible-runner's recap keys -> HostRunStats fields ("dark" means unreachable).
_STAT_FIELDS = {"dark": "unreachable"} | {
    key: key for key in ("ok", "changed", "failures", "skipped", "rescued", "ignored")
}


def host_stats(raw: Mapping[str, Mapping[str, int]] | None) -> dict[str, HostRunStats]:
    """ansible-runner's stats as one recap per host."""
    if not raw:
        return {}
    per_host: dict[str, dict[str, int]] = {}
    for key, field in _STAT_FIELDS.items():
        for host, count in (raw.get(key) or {}).items():
            per_host.setdefault(host, {})[field] = int(count)
    for host in raw.get("processed") or {}:
        per_host.setdefault(host, {})
    return {host: HostRunStats(**counts) for host, counts in per_host.items()}


def read_events(artifact_dir: Path) -> list[dict[str, Any]]:
    """Load a run's job events, ordered by their counter."""
    events: list[dict[str, Any]] = []
    for path in (artifact_dir / "job_events").glob("*.json"):
        if path.name.endswith("-partial.json"):
            continue
        try:
            event = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a half-written event of a run still in progress
        if isinstance(event, dict):
            events.append(event)
    return sorted(events, key=lambda e: int(e.get("counter", 0)))
