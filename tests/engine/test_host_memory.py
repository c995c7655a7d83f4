"""The host's memory as a monitor counts it: a cgroup's limit when it is below the
machine's (v1 and v2 layouts, written as the kernel writes them), else the machine's."""

from __future__ import annotations

from pathlib import Path

import psutil

from autosre.host_memory import HostMemory, host_memory

MIB = 1024 * 1024


def _write(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_a_v1_memory_cgroup_limit_is_the_hosts_memory(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("12:cpu,cpuacct:/lab/web2\n9:memory:/lab/web2\n0::/\n")
    _write(
        tmp_path / "fs" / "memory" / "lab" / "web2",
        {
            "memory.limit_in_bytes": f"{256 * MIB}\n",
            "memory.usage_in_bytes": f"{100 * MIB}\n",
            "memory.stat": f"cache {30 * MIB}\ntotal_cache {40 * MIB}\nrss {60 * MIB}\n",
        },
    )
    # Page cache (the host's tmpfs files among it) is not use: 100 - 40 MiB used.
    assert host_memory(proc, tmp_path / "fs") == HostMemory(256 * MIB, 196 * MIB)


def test_a_v2_memory_limit_counts_and_max_means_the_machine(tmp_path: Path) -> None:
    proc = tmp_path / "cgroup"
    proc.write_text("0::/lab/web3\n")
    where = tmp_path / "fs" / "lab" / "web3"
    _write(
        where,
        {
            "memory.max": f"{512 * MIB}\n",
            "memory.current": f"{200 * MIB}\n",
            "memory.stat": f"anon {150 * MIB}\nfile {50 * MIB}\n",
        },
    )
    assert host_memory(proc, tmp_path / "fs") == HostMemory(512 * MIB, 362 * MIB)
    (where / "memory.max").write_text("max\n")
    assert host_memory(proc, tmp_path / "fs").total == psutil.virtual_memory().total


def test_no_cgroup_or_a_limit_above_the_machine_is_the_machines_memory(tmp_path: Path) -> None:
    machine = psutil.virtual_memory().total
    assert host_memory(tmp_path / "missing", tmp_path).total == machine
    proc = tmp_path / "cgroup"
    proc.write_text("9:memory:/\n")
    _write(
        tmp_path / "fs" / "memory",
        {
            "memory.limit_in_bytes": "9223372036854771712\n",  # "no limit" on v1
            "memory.usage_in_bytes": "1\n",
            "memory.stat": "total_cache 0\n",
        },
    )
    assert host_memory(proc, tmp_path / "fs").total == machine
