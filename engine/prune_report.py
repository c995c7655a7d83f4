"""What a prune removed (or, dry, would remove), told as a record, JSON and one line."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from engine.timeutil import iso, to_dt


@dataclass(frozen=True, slots=True)
class PruneReport:
    """What a prune removed (or, dry, would remove), and the oldest of what stays."""

    dry_run: bool
    by: str
    at: float
    run_dirs: int
    bytes: int
    incidents: int
    rows: dict[str, int]
    oldest_run_dir: float | None
    oldest_incident: float | None
    refused: list[str] = field(default_factory=list)  # symlinks in runs/, never followed
    failed: list[str] = field(default_factory=list)  # run dirs that could not be removed

    @property
    def removed_anything(self) -> bool:
        """True when a run dir or a row went (or, dry, would go)."""
        return self.run_dirs > 0 or any(self.rows.values())

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: times as ISO 8601 UTC."""
        out = asdict(self)
        for key in ("at", "oldest_run_dir", "oldest_incident"):
            out[key] = iso(to_dt(out[key])) if out[key] is not None else None
        return out


def human_bytes(count: int) -> str:
    """Bytes as a person reads them: 512 B, 12.3 KiB, 4.5 GiB."""
    if count < 1024:
        return f"{count} B"
    size, unit = float(count), "B"
    for unit in ("KiB", "MiB", "GiB"):  # noqa: B007 - the last unit reached is the one shown
        size /= 1024
        if size < 1024:
            break
    return f"{size:.1f} {unit}"


def summary(report: PruneReport) -> str:
    """One line: who pruned (or would prune) how much."""
    verb = "would prune" if report.dry_run else "pruned"
    return (
        f"{report.by} {verb} {report.run_dirs} run dirs ({human_bytes(report.bytes)}) and "
        f"{report.incidents} incidents ({sum(report.rows.values())} rows)"
    )
