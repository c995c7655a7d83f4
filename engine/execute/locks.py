"""Per-host locks shared by the engine and by-hand runs: flock on files in the data dir for
the one machine of the SQLite mode (they die with their process, so a crash never leaves a
host locked); run leases in the database for replicas on PostgreSQL (engine/lease).
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

from engine.errors import HostBusyError

# After its timeout a run is killed and cleaned up: its lease holds this much longer.
HOLD_MARGIN = 60.0


def hold_for(timeout: float) -> float:
    """How long a run's lease must outlive a killed owner: its timeout and the cleanup."""
    return timeout + HOLD_MARGIN


class Held(Protocol):
    """Locks held on a set of hosts."""

    @property
    def hosts(self) -> tuple[str, ...]:
        """The hosts held."""

    def release(self) -> None:
        """Free them all (idempotent)."""


class Locks(Protocol):
    """All-or-nothing, non-blocking locks on hosts (files, or leases in the store)."""

    def acquire(
        self, hosts: Iterable[str], holder: str, *, hold_for: float = 0.0, reclaim: bool = False
    ) -> Held:
        """Lock every host or none; HostBusyError naming the first busy host. ``hold_for``:
        the run's timeout (a lease outlives its owner that long); ``reclaim``: take what a
        process of this machine that died still holds."""


class HeldLocks:
    """Locks held on a set of hosts; release() frees them all."""

    def __init__(self, fds: dict[str, int]) -> None:
        self._fds = fds

    @property
    def hosts(self) -> tuple[str, ...]:
        """The hosts held."""
        return tuple(self._fds)

    def release(self) -> None:
        """Unlock and close every lock file (idempotent)."""
        for fd in self._fds.values():
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
        self._fds = {}


class HostLocks:
    """Non-blocking, all-or-nothing locks on hosts, by lock file."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        directory.mkdir(parents=True, exist_ok=True)

    def acquire(
        self, hosts: Iterable[str], holder: str, *, hold_for: float = 0.0, reclaim: bool = False
    ) -> HeldLocks:
        """Lock every host or none; raise HostBusyError naming the first busy host (a flock
        dies with its process: nothing to hold on for, nothing to reclaim)."""
        fds: dict[str, int] = {}
        try:
            for host in sorted(set(hosts)):
                fd = os.open(self.directory / f"{host}.lock", os.O_RDWR | os.O_CREAT, 0o600)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    current = os.pread(fd, 512, 0).decode("utf-8", "replace").strip()
                    os.close(fd)
                    raise HostBusyError(host, current) from None
                os.ftruncate(fd, 0)
                os.pwrite(fd, holder.encode(), 0)
                fds[host] = fd
        except BaseException:
            HeldLocks(fds).release()
            raise
        return HeldLocks(fds)
