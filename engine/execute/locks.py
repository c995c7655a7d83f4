"""Per-host locks shared by the engine and by-hand runs (flock on files in the data dir).

Locks die with their process, so a crash never leaves a host locked.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterable
from pathlib import Path

from engine.errors import HostBusyError


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

    def acquire(self, hosts: Iterable[str], holder: str) -> HeldLocks:
        """Lock every host or none; raise HostBusyError naming the first busy host."""
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
