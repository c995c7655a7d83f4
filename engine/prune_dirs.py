"""Run dirs on disk for retention: listed, measured and removed, never through a symlink.

Only the direct children of ``runs_dir`` are considered, each seen with ``lstat``: a
symlink among them is refused (never followed, never removed), so nothing outside
``runs_dir`` is ever measured or deleted. Removal re-checks the entry and uses
``shutil.rmtree``, which on this platform walks by file descriptor and unlinks any
symlink inside the tree rather than following it.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

# The executor's idents (engine/execute/runner.py): nothing else in runs/ is a run dir.
RUN_DIR_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")


@dataclass(frozen=True, slots=True)
class RunDir:
    """A run dir found under runs_dir: its name (the run's ident) and last change."""

    name: str
    path: Path
    mtime: float


def list_run_dirs(runs_dir: Path) -> tuple[list[RunDir], list[str]]:
    """The run dirs directly under runs_dir, and the names of symlinks refused there."""
    found: list[RunDir] = []
    refused: list[str] = []
    try:
        entries = list(os.scandir(runs_dir))
    except FileNotFoundError:
        return [], []
    for entry in entries:
        if not RUN_DIR_NAME.fullmatch(entry.name):
            continue
        try:
            info = entry.stat(follow_symlinks=False)
        except OSError:
            continue  # gone since the listing
        if stat.S_ISLNK(info.st_mode):
            refused.append(entry.name)
        elif stat.S_ISDIR(info.st_mode):
            found.append(RunDir(entry.name, Path(entry.path), info.st_mtime))
    found.sort(key=lambda d: d.name)
    return found, sorted(refused)


def measure(path: Path) -> int:
    """Bytes of the regular files under path, symlinks neither followed nor counted."""
    total = 0
    for folder, _dirs, files in os.walk(path, followlinks=False):
        for name in files:
            try:
                info = os.lstat(os.path.join(folder, name))  # noqa: PTH118 - os.walk's strings
            except OSError:
                continue
            if stat.S_ISREG(info.st_mode):
                total += info.st_size
    return total


def remove(path: Path) -> str | None:
    """Delete one run dir; None when done, else why not (one line)."""
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None  # already gone: nothing left to prune
    except OSError as exc:
        return f"{path.name}: {exc.strerror or exc}"
    if not stat.S_ISDIR(info.st_mode):
        return f"{path.name}: not a directory (a symlink is never followed)"
    if not shutil.rmtree.avoids_symlink_attacks:
        # A platform whose rmtree could be raced into following a link: leave it to a human.
        return f"{path.name}: this platform cannot delete a tree safely"
    try:
        shutil.rmtree(path)
    except OSError as exc:
        return f"{path.name}: {exc.strerror or exc}"
    return None
