"""Where a run keeps what must never reach the data dir (its vars file, secret vars in
clear, and ansible-runner's raw events): a private directory of this user under the
system's temp dir, one subdirectory per run ident, so that what a killed engine left is
found by its ident and swept at the next start (engine/reconcile.py)."""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def scratch_root() -> Path:
    """This user's scratch root: ``<temp dir>/autosre-<uid>``."""
    return Path(tempfile.gettempdir()) / f"autosre-{os.getuid()}"


def ensure_private(root: Path) -> None:
    """Make ``root`` (0700), or check that the one there is a real directory of this user
    that nobody else may enter (a planted dir or symlink would see secret vars); OSError
    naming the problem otherwise."""
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o700)
    info = os.lstat(root)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise OSError(
            f"{root} is not a private directory of uid {os.getuid()} (mode 0700, not a link): "
            "remove it, or set TMPDIR"
        )
