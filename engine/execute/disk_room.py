"""Room on the artifacts disk: a run that could not write its events and output would be
half-recorded, so none starts on a disk that is (nearly) full."""

from __future__ import annotations

import shutil
from pathlib import Path

MIB = 1024 * 1024


def free_bytes(path: Path) -> int:
    """Bytes free to this process on the filesystem that holds (or would hold) ``path``."""
    for candidate in (path, *path.parents):
        if candidate.exists():
            return shutil.disk_usage(candidate).free
    return shutil.disk_usage("/").free


def no_room(runs_dir: Path, minimum_mb: int) -> str | None:
    """Why no run may start now (the disk under ``runs_dir`` is nearly full), or None."""
    free = free_bytes(runs_dir)
    if free >= minimum_mb * MIB:
        return None
    return (
        f"the artifacts disk is full: {free / MIB:.0f} MiB free under {runs_dir}, "
        f"a run needs {minimum_mb} MiB (AUTOSRE_MIN_FREE_MB); free space, then re-run"
    )
