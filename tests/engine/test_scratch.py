"""The scratch root holds secret vars in clear: a directory planted there by someone else
(a symlink, a world-readable dir, another user's dir) is refused, never written into."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from engine.execute.scratch import ensure_private


def test_a_fresh_root_is_made_private(tmp_path: Path) -> None:
    root = tmp_path / "autosre-0"
    ensure_private(root)
    assert root.is_dir() and root.stat().st_mode & 0o777 == 0o700
    ensure_private(root)  # and is accepted again


@pytest.mark.parametrize("plant", ["symlink", "open_mode", "other_owner"])
def test_a_planted_root_is_refused(tmp_path: Path, plant: str) -> None:
    root = tmp_path / "autosre-0"
    if plant == "symlink":
        (tmp_path / "attacker").mkdir(mode=0o700)
        root.symlink_to(tmp_path / "attacker")
    else:
        root.mkdir(mode=0o700)
        if plant == "open_mode":
            root.chmod(0o777)
        else:
            if os.getuid() != 0:
                pytest.skip("needs root to give the directory away")
            os.chown(root, 65534, 65534)  # nobody
    with pytest.raises(OSError, match="is not a private directory"):
        ensure_private(root)
