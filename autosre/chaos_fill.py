"""Chaos: fill memory or a filesystem, as a leaking service or a log storm would.

``hog_memory`` holds memory in a child process until the named service restarts (its
pidfile names another master), unless stubborn. ``fill_disk`` writes one file into a
directory of a temporary or declared area until the file is cleaned away, unless stubborn
(then it writes the file again). Both are bounded in time and leave nothing behind: the
child's process group is killed, the file removed.
"""

from __future__ import annotations

import contextlib
import errno
import math
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from autosre.chaos import interrupt_on_sigterm, kill_group, read_pid, restarted
from autosre.host_memory import host_memory
from engine.errors import ChaosError

MIB = 1024 * 1024
SERVICE_NAME = re.compile(r"[a-z][a-z0-9_.@-]{0,63}")
# Where `chaos disk` may write: temporary areas and the lab's data filesystem.
DISK_AREAS = (Path(tempfile.gettempdir()), Path("/var/tmp"), Path("/srv/lab-data"))  # noqa: S108
MIN_AVAILABLE = 0.05  # never leave the host with less than this share of memory available
# The holder: one allocation that touches every page, then sleep until the backstop.
_HOLD = "import time\ndata = b'\\x01' * {size}\ntime.sleep({seconds})\n"

FillReason = Literal["service_restarted", "cleaned", "timeout", "interrupted"]


@dataclass(frozen=True, slots=True)
class FillOutcome:
    """Why the fill ended, how long it ran (seconds) and how many bytes it held."""

    reason: FillReason
    duration: float
    size: int


def memory_to_hold(
    percent: float, *, max_mb: int, memory: Callable[[], object] = host_memory
) -> int:
    """Bytes to hold so that the host's memory use reaches ``percent``; ChaosError when it
    is there already, or it would take more than ``max_mb`` or nearly all that is left."""
    state = memory()
    total, available = int(getattr(state, "total", 0)), int(getattr(state, "available", 0))
    if not 0 < percent < 100 or total <= 0:
        raise ChaosError(f"need 0 < percent < 100 and a readable memory size, got {percent=}")
    used = 100.0 * (1 - available / total)
    need = math.ceil(percent / 100 * total - (total - available))
    if need <= 0:
        raise ChaosError(f"memory use is {used:.1f}% already, at or above {percent:g}%")
    if need > max_mb * MIB:
        raise ChaosError(f"reaching {percent:g}% needs {need // MIB} MiB, over --max-mb {max_mb}")
    if available - need < MIN_AVAILABLE * total:
        raise ChaosError(f"reaching {percent:g}% would leave under 5% of memory available")
    return need


def hog_memory(
    *,
    percent: float,
    seconds: float,
    stubborn: bool = False,
    service: str = "nginx",
    pidfile: Path | None = None,
    max_mb: int = 4096,
    on_progress: Callable[[str], None] | None = None,
    poll: float = 0.2,
) -> FillOutcome:
    """Hold memory until host use reaches ``percent``, for up to ``seconds``; a non-stubborn
    hog lets go when ``service`` restarts."""
    say = on_progress or (lambda _msg: None)
    if not SERVICE_NAME.fullmatch(service):
        raise ChaosError(f"{service!r} is not a service name")
    if seconds <= 0:
        raise ChaosError(f"need seconds > 0, got {seconds=}")
    pidfile = pidfile or Path(f"/run/{service}.pid")
    master = read_pid(pidfile)
    if master is None and not stubborn:
        raise ChaosError(f"{service} is not running (no live pid in {pidfile}): nothing to restart")
    size = memory_to_hold(percent, max_mb=max_mb)
    start = time.monotonic()
    deadline = start + seconds
    reason: FillReason = "timeout"
    with interrupt_on_sigterm():
        try:
            with _holder(size, seconds):
                say(f"holding {size // MIB} MiB for {seconds:g}s ({service} pid {master})")
                while (now := time.monotonic()) < deadline:
                    if master is not None and restarted(pidfile, master):
                        if not stubborn:
                            reason = "service_restarted"
                            say(f"{service} master pid {master} replaced: letting go")
                            break
                        say(f"{service} master pid {master} replaced: the stubborn hog holds on")
                        master = read_pid(pidfile)
                    time.sleep(min(poll, deadline - now))
        except KeyboardInterrupt:
            reason = "interrupted"
            say("interrupted: the memory is let go")
    return FillOutcome(reason=reason, duration=time.monotonic() - start, size=size)


@contextlib.contextmanager
def _holder(size: int, seconds: float) -> Iterator[None]:
    # The holder stops on its own a little after `seconds`, in case this process dies.
    proc = subprocess.Popen(
        [sys.executable, "-c", _HOLD.format(size=size, seconds=math.ceil(seconds) + 1)],
        stdin=subprocess.DEVNULL,
        process_group=0,
    )
    try:
        yield
    finally:
        kill_group(proc)


def fill_target(path: str | Path, *, areas: tuple[Path, ...] = DISK_AREAS) -> Path:
    """The directory to fill, resolved; ChaosError unless it is a real directory (no
    symlink on its way) inside one of ``areas``."""
    given = Path(path).absolute()
    real = given.resolve()
    if real != given:
        raise ChaosError(f"{path}: resolves to {real} through a symlink or '..': refused")
    if not real.is_dir():
        raise ChaosError(f"{path}: not a directory")
    roots = [area.resolve() for area in areas]
    if not any(real.is_relative_to(root) for root in roots):
        shown = ", ".join(str(root) for root in roots)
        raise ChaosError(f"{path}: outside the areas chaos may fill ({shown}): refused")
    return real


def bytes_to_fill(directory: Path, percent: float, *, max_mb: int) -> int:
    """Bytes to write so that the filesystem holding ``directory`` is ``percent`` used
    (as ``1 - avail / size``); ChaosError when it is already, or it takes over ``max_mb``."""
    if not 0 < percent <= 100:
        raise ChaosError(f"need 0 < percent <= 100, got {percent}")
    stats = os.statvfs(directory)
    total, avail = stats.f_blocks * stats.f_frsize, stats.f_bavail * stats.f_frsize
    need = math.ceil(avail - (1 - percent / 100) * total) + stats.f_frsize
    if need <= stats.f_frsize:
        raise ChaosError(f"{directory} is {100 * (1 - avail / total):.1f}% used already")
    if need > max_mb * MIB:
        raise ChaosError(f"reaching {percent:g}% needs {need // MIB} MiB, over --max-mb {max_mb}")
    return min(need, avail)


def fill_disk(
    *,
    path: str | Path,
    percent: float,
    seconds: float,
    stubborn: bool = False,
    max_mb: int = 1024,
    areas: tuple[Path, ...] = DISK_AREAS,
    on_progress: Callable[[str], None] | None = None,
    poll: float = 0.2,
) -> FillOutcome:
    """Write one file into ``path`` until its filesystem is ``percent`` used, for up to
    ``seconds``; a non-stubborn fill ends when the file is cleaned away."""
    say = on_progress or (lambda _msg: None)
    if seconds <= 0:
        raise ChaosError(f"need seconds > 0, got {seconds=}")
    directory = fill_target(path, areas=areas)
    size = bytes_to_fill(directory, percent, max_mb=max_mb)
    target = directory / f"autosre-chaos-fill-{os.getpid()}.bin"
    start = time.monotonic()
    deadline = start + seconds
    reason: FillReason = "timeout"
    inode = None
    with interrupt_on_sigterm():
        try:
            inode = _write(target, size)
            say(f"wrote {size // MIB} MiB to {target} for {seconds:g}s")
            while (now := time.monotonic()) < deadline:
                if _inode(target) != inode:
                    if not stubborn:
                        reason = "cleaned"
                        say(f"{target} was cleaned away: the fill ends")
                        break
                    inode = _write(target, size)
                    say(f"{target} was cleaned away: the stubborn fill writes it again")
                time.sleep(min(poll, deadline - now))
        except KeyboardInterrupt:
            reason = "interrupted"
            say("interrupted: the fill is removed")
        finally:
            if inode is not None and _inode(target) == inode:
                target.unlink()
    return FillOutcome(reason=reason, duration=time.monotonic() - start, size=size)


def _inode(path: Path) -> int | None:
    try:
        return path.lstat().st_ino
    except FileNotFoundError:
        return None


def _write(target: Path, size: int) -> int:
    """Create ``target`` (never through a symlink, never over a file) with ``size`` bytes."""
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    chunk = b"\0" * MIB
    try:
        left = size
        while left > 0:
            try:
                left -= os.write(fd, chunk[: min(left, MIB)])
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
                break  # the filesystem is full: as full as a fill gets
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)
