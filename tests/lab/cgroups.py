"""Each lab host's own cgroup: cpuacct, memory and cpu on cgroup v1, one directory on v2.

The lab makes ``<root>/autosre-lab-<lab id>/<host>`` under each hierarchy, sets the memory
limit and the CPU quota (a host has its share of a core, as a VM has its vCPUs, so that
burns on several hosts leave the machine's other work, the engine included, its share),
lists and ends its members by pid, and removes only the directories it made.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import time
from dataclasses import dataclass
from pathlib import Path

from tests.lab.errors import LabError

ROOT = Path("/sys/fs/cgroup")


@dataclass(frozen=True)
class HostCgroup:
    """The cgroup directories of one lab host (two on v1, one on v2)."""

    version: int
    dirs: tuple[Path, ...]

    @property
    def procs_files(self) -> list[Path]:
        """Every cgroup.procs file a process of the host must be written to."""
        return [d / "cgroup.procs" for d in self.dirs]

    def exporter_paths(self) -> dict[str, str]:
        """What the exporter reads, by role."""
        if self.version == 1:
            cpu, memory = self.dirs[:2]
            return {
                "kind": "v1",
                "cpu": str(cpu / "cpuacct.usage"),
                "mem": str(memory / "memory.usage_in_bytes"),
                "stat": str(memory / "memory.stat"),
            }
        (one,) = self.dirs
        return {
            "kind": "v2",
            "cpu": str(one / "cpu.stat"),
            "mem": str(one / "memory.current"),
            "stat": str(one / "memory.stat"),
        }

    def pids(self) -> set[int]:
        """Pids of every process in the host's cgroups now."""
        found: set[int] = set()
        for procs in self.procs_files:
            try:
                found.update(int(line) for line in procs.read_text().split())
            except OSError:
                continue
        return found

    def kill_all(self, timeout: float = 5.0) -> None:
        """SIGKILL every member until none is left (bounded), for what outlived its holder."""
        deadline = time.monotonic() + timeout
        while (pids := self.pids()) and time.monotonic() < deadline:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)
        if self.pids():
            raise LabError(f"processes {sorted(self.pids())} survive in {self.dirs[0]}")

    def remove(self) -> None:
        """Remove the (empty) host directories, then their lab parent when it is empty."""
        for directory in self.dirs:
            for path in (directory, directory.parent):
                try:
                    path.rmdir()
                except FileNotFoundError:
                    pass
                except OSError:
                    if path == directory:
                        raise
                    # the parent still holds another host's directory


def detect(root: Path = ROOT) -> int:
    """1 or 2, by what this machine offers; LabError naming what is missing otherwise."""
    if (root / "cgroup.controllers").exists():
        controllers = (root / "cgroup.controllers").read_text().split()
        if {"cpu", "memory"} <= set(controllers):
            return 2
        raise LabError(f"cgroup v2 at {root} lacks the cpu or memory controller: {controllers}")
    if (root / "cpuacct" / "cpuacct.usage").exists() and (
        root / "memory" / "cgroup.procs"
    ).exists():
        return 1
    raise LabError(
        f"no cgroup support: neither {root}/cgroup.controllers (v2) "
        f"nor cpuacct and memory under {root} (v1)"
    )


def of_host(lab_id: str, host: str, version: int, root: Path = ROOT) -> HostCgroup:
    """Where a lab host's cgroup lives: derived from the lab id and host name only, so a
    lab record cannot point the lab at anyone else's cgroup."""
    if not re.fullmatch(r"[0-9a-f]{6}", lab_id) or not re.fullmatch(r"web[0-9]{1,3}", host):
        raise LabError(f"not a lab id and host name: {lab_id!r} {host!r}")
    group = f"autosre-lab-{lab_id}"
    if version == 1:
        dirs = [root / "cpuacct" / group / host, root / "memory" / group / host]
        quota = root / "cpu" / group / host
        # Where cpu and cpuacct share one hierarchy, the quota lives in the cpuacct directory.
        if (root / "cpu").resolve() != (root / "cpuacct").resolve():
            dirs.append(quota)
        return HostCgroup(1, tuple(dirs))
    if version == 2:
        return HostCgroup(2, (root / group / host,))
    raise LabError(f"not a cgroup version: {version!r}")


PERIOD_US = 100_000  # the CFS period the quota is a share of
# A host stands for another machine: up to its quota, it must not lose its CPU to the
# controller's own processes (the engine, ansible-playbook, ssh), each of which weighs as
# much as a whole host cgroup by default (1024 on v1, 100 on v2).
SHARES_V1, WEIGHT_V2 = 8192, 800


def create(
    lab_id: str, host: str, memory_bytes: int, cpus: float = 1.0, root: Path = ROOT
) -> HostCgroup:
    """Make the host's cgroup(s) with the memory limit and the CPU quota set."""
    group = of_host(lab_id, host, detect(root), root)
    quota = str(max(1000, round(cpus * PERIOD_US)))
    try:
        if group.version == 1:
            for directory in group.dirs:
                directory.mkdir(parents=True)
            (group.dirs[1] / "memory.limit_in_bytes").write_text(str(memory_bytes))
            cpu = group.dirs[2] if len(group.dirs) > 2 else group.dirs[0]
            (cpu / "cpu.cfs_period_us").write_text(str(PERIOD_US))
            (cpu / "cpu.cfs_quota_us").write_text(quota)
            # The lab's parent weighs for all its hosts against the machine's processes.
            for directory in (cpu.parent, cpu):
                (directory / "cpu.shares").write_text(str(SHARES_V1))
            return group
        (one,) = group.dirs
        one.parent.mkdir(exist_ok=True)
        for parent in (root, one.parent):
            (parent / "cgroup.subtree_control").write_text("+cpu +memory")
        one.mkdir()
        (one / "memory.max").write_text(str(memory_bytes))
        (one / "cpu.max").write_text(f"{quota} {PERIOD_US}")
        for directory in (one.parent, one):
            (directory / "cpu.weight").write_text(str(WEIGHT_V2))
        return group
    except OSError as exc:
        raise LabError(f"cannot make the cgroup of lab host {host}: {exc}") from exc
