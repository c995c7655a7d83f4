"""How much memory this host has and how much is free, as a monitor of it would count.

On a VM that is the machine's memory (psutil). In a container or any cgroup whose memory
limit is below the machine's (a lab host, say), the limit is the host's memory and what
the cgroup uses, page cache excluded, is its use: the same figures node_exporter's
``MemTotal``/``MemAvailable`` show inside such a host, so a chaos hog sized by them
reaches the percent it was asked for, not the machine's.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import psutil

CGROUP_ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True, slots=True)
class HostMemory:
    """Bytes in all and bytes available."""

    total: int
    available: int


def host_memory(
    proc_cgroup: Path = Path("/proc/self/cgroup"), root: Path = CGROUP_ROOT
) -> HostMemory:
    """This host's memory: its cgroup's when limited below the machine's, else the machine's."""
    machine = psutil.virtual_memory()
    limited = _cgroup_memory(proc_cgroup, root)
    if limited is not None and limited.total < machine.total:
        return limited
    return HostMemory(int(machine.total), int(machine.available))


def _cgroup_memory(proc_cgroup: Path, root: Path) -> HostMemory | None:
    """The memory cgroup's limit and use (v1 or v2); None when unreadable or unlimited."""
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        _, controllers, path = line.split(":", 2)
        relative = path.lstrip("/")
        try:
            if "memory" in controllers.split(","):  # v1
                where = root / "memory" / relative
                limit = int((where / "memory.limit_in_bytes").read_text())
                usage = int((where / "memory.usage_in_bytes").read_text())
                cache = _stat(where / "memory.stat", "total_cache")
            elif controllers == "" and (root / relative / "memory.max").exists():  # v2
                where = root / relative
                raw = (where / "memory.max").read_text().strip()
                if raw == "max":
                    return None
                limit, usage = int(raw), int((where / "memory.current").read_text())
                cache = _stat(where / "memory.stat", "file")
            else:
                continue
        except (OSError, ValueError):
            return None
        used = max(usage - cache, 0)
        return HostMemory(limit, max(limit - used, 0))
    return None


def _stat(path: Path, key: str) -> int:
    for line in path.read_text().splitlines():
        name, _, value = line.partition(" ")
        if name == key:
            return int(value)
    return 0
