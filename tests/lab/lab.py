"""A lab of N hosts on this machine (web1..webN), each with its own mount namespace,
cgroup, nginx and sshd, scraped by a real Prometheus, written up as an inventory.

``Lab(dir).up()`` brings it up (hosts in parallel) and records everything it started in
``<dir>/lab.json``; ``Lab.attach(dir).down()`` (another process may do it) stops each
process by pid, then whatever is left in the hosts' cgroups, removes the cgroups and the
files it wrote. The mounts die with the namespaces.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from tests.lab import cgroups, files, services
from tests.lab.errors import LabError
from tests.lab.host import LabHost
from tests.lab.processes import Tracked, tail

NEEDED = {
    "/usr/sbin/sshd": "openssh-server",
    "/usr/bin/ssh-keygen": "openssh-client",
    "/usr/sbin/nginx": "nginx",
    "/etc/init.d/nginx": "nginx",
    "/usr/bin/prometheus": "prometheus",
    "/usr/bin/unshare": "util-linux",
    "/usr/bin/nsenter": "util-linux",
    services.PYTHON: "python3",
}
STATE = "lab.json"
# Everything up writes: down removes these names and nothing else.
OWNED = ("lab.json", "id_ed25519", "id_ed25519.pub", "authorized_keys", "known_hosts",
         "inventory.ini", "sshd_config", "nginx-template", "hosts", "prometheus",
         "exporter.json", "exporter.log")  # fmt: skip


def preflight() -> None:
    """LabError naming the first thing this machine lacks for a lab."""
    if os.geteuid() != 0:
        raise LabError("the lab needs root (mount namespaces, cgroups, sshd)")
    for path, package in NEEDED.items():
        if not Path(path).exists():
            raise LabError(f"{path} is missing (apt-get install {package})")
    if not Path("/srv").is_dir():
        raise LabError("/srv is missing: each lab host mounts its private tmpfs there")
    cgroups.detect()


def _free_ports(count: int) -> list[int]:
    """Distinct ports free on 127.0.0.1 now (all held open until all are picked)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            socks.append(sock)
            sock.bind(("127.0.0.1", 0))
        return [int(sock.getsockname()[1]) for sock in socks]
    finally:
        for sock in socks:
            sock.close()


class Lab:
    """A lab in ``directory``: ``up()``/``down()``, or use it as a context manager."""

    def __init__(
        self, directory: Path, hosts: int = 4, *, cpus: float = 1, memory_mb: int = 256,
        data_mb: int = 64, start_timeout: float = 60.0,
    ) -> None:  # fmt: skip
        if not 1 <= hosts <= 500:
            raise LabError(f"hosts must be between 1 and 500, got {hosts}")
        self.directory = directory.absolute()
        self.count, self.cpus, self.memory_mb, self.data_mb = hosts, cpus, memory_mb, data_mb
        self.start_timeout = start_timeout
        self.hosts: dict[str, LabHost] = {}
        self.state: dict[str, Any] = {}
        self.timings: dict[str, float] = {}
        self._children: list[subprocess.Popen[bytes]] = []  # reaped at down

    @property
    def inventory_path(self) -> Path:
        """The inventory the lab wrote (group ``web``)."""
        return self.directory / "inventory.ini"

    @property
    def key_path(self) -> Path:
        """The private key Ansible uses for every host."""
        return self.directory / "id_ed25519"

    @property
    def known_hosts_path(self) -> Path:
        """The known_hosts file with every host's key."""
        return self.directory / "known_hosts"

    @property
    def prometheus_url(self) -> str:
        """Base URL of the lab's Prometheus."""
        return f"http://127.0.0.1:{self.state['prometheus_port']}"

    def __enter__(self) -> Lab:
        return self.up()

    def __exit__(self, *_exc: object) -> None:
        self.down()

    @classmethod
    def attach(cls, directory: Path) -> Lab:
        """The lab recorded in ``directory`` (for down and status); LabError if none."""
        path = directory.absolute() / STATE
        try:
            state = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise LabError(f"no lab in {directory} ({path} unreadable: {exc})") from exc
        lab = cls(directory, hosts=len(state.get("hosts", [])) or 1)
        lab.state = state
        lab.hosts = {h["name"]: lab._host_from(h) for h in state.get("hosts", []) if "holder" in h}
        return lab

    def _save(self) -> None:
        tmp = self.directory / (STATE + ".tmp")
        tmp.write_text(json.dumps(self.state, indent=1))
        tmp.rename(self.directory / STATE)

    def up(self) -> Lab:
        """Bring every host, the exporter and Prometheus up; LabError (after a full down)
        when something fails."""
        preflight()
        if (self.directory / STATE).exists():
            raise LabError(f"a lab already runs in {self.directory} (run `lab down` first)")
        if self.directory.exists() and not self.directory.is_dir():
            raise LabError(f"{self.directory} is not a directory")
        if self.directory.exists() and any(self.directory.iterdir()):
            raise LabError(f"{self.directory} is not empty: the lab needs a directory of its own")
        made = not self.directory.exists()
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.state = {"id": secrets.token_hex(3), "made_dir": made, "hosts": []}
        self._save()
        try:
            self._up()
        except BaseException:
            self.down()
            raise
        return self

    def _up(self) -> None:
        began = time.monotonic()
        d, lab_id = self.directory, self.state["id"]
        names = [f"web{n}" for n in range(1, self.count + 1)]
        (d / "hosts").mkdir()
        for name in names:
            (d / "hosts" / name).mkdir()
        ports = iter(_free_ports(3 * len(names) + 1))
        self.state["prometheus_port"] = next(ports)
        specs: list[dict[str, Any]] = [
            {"name": n, "ssh_port": next(ports), "nginx_port": next(ports),
             "exporter_port": next(ports)} for n in names
        ]  # fmt: skip
        self.state["hosts"] = specs
        # Prometheus 2.42 applies new targets only every 5 s: its wait overlaps the hosts'.
        self._start_prometheus()
        keys = [files.keygen(d / "id_ed25519", f"autosre-lab-{lab_id}")]
        keys += [files.keygen(d / "hosts" / n / "ssh_host_ed25519_key", n) for n in names]
        files.copy_nginx_template(d / "nginx-template")
        (d / "sshd_config").write_text(files.SSHD_CONFIG)
        files.wait_all(keys, "ssh-keygen")
        shutil.copyfile(d / "id_ed25519.pub", d / "authorized_keys")
        self.state["cgroup_version"] = cgroups.detect()
        for spec in specs:
            self._save()  # before the cgroup exists: down must know of it
            group = cgroups.create(lab_id, spec["name"], self.memory_mb << 20, self.cpus)
            spec["process"] = self._start_holder(spec, group)
        self._save()
        self.timings["spawned"] = time.monotonic() - began
        self._wait_for_holders()
        self.timings["hosts_ready"] = time.monotonic() - began
        self._start_exporter()
        self.timings["exporter_ready"] = time.monotonic() - began
        hosts = list(self.hosts.values())
        files.known_hosts(self.known_hosts_path, hosts, d / "hosts")
        files.inventory(self.inventory_path, hosts, self.key_path, self.known_hosts_path)
        self._wait_for_samples()
        self.timings["prometheus_ready"] = time.monotonic() - began

    def _start_holder(self, spec: dict[str, Any], group: cgroups.HostCgroup) -> list[float]:
        proc = services.start_holder(self.directory, spec, group.procs_files, self.data_mb)
        self._children.append(proc)
        return [proc.pid, Tracked.of(proc.pid, self._marker("holder", spec["name"])).started]

    def _wait_for_holders(self) -> None:
        deadline = time.monotonic() + self.start_timeout
        pending = {spec["name"]: spec for spec in self.state["hosts"]}
        while pending:
            for name, spec in list(pending.items()):
                host_dir = self.directory / "hosts" / name
                ready = host_dir / "ready.json"
                if ready.exists():
                    spec["holder"] = json.loads(ready.read_text())["holder"]
                    self.hosts[name] = self._host_from(spec)
                    del pending[name]
                elif not self._tracked("holder", spec).alive():
                    raise LabError(f"lab host {name} failed: {tail(host_dir / 'holder.log')}")
            if pending and time.monotonic() > deadline:
                raise LabError(f"lab hosts {sorted(pending)} not ready in {self.start_timeout}s")
            time.sleep(0.05)
        self.hosts = {name: self.hosts[name] for name in sorted(self.hosts, key=_number)}
        self._save()

    def _start_exporter(self) -> None:
        hosts = list(self.hosts.values())
        proc = services.start_exporter(self.directory, hosts, self.cpus, self.memory_mb << 20)
        self._children.append(proc)
        self.state["exporter"] = [proc.pid, Tracked.of(proc.pid, self._marker("exporter")).started]
        self._save()

    def _start_prometheus(self) -> None:
        ports = [spec["exporter_port"] for spec in self.state["hosts"]]
        proc = services.start_prometheus(self.directory, self.state["prometheus_port"], ports)
        self._children.append(proc)
        self.state["prometheus"] = [
            proc.pid,
            Tracked.of(proc.pid, self._marker("prometheus")).started,
        ]
        self._save()

    def run_in(self, host: str, argv: list[str], timeout: float = 60.0) -> str:
        """Run ``argv`` inside lab host ``host`` (its namespace and cgroup); its stdout."""
        return self.hosts[host].run_in(argv, timeout=timeout).stdout

    def burn(
        self, host: str, seconds: float, stubborn: bool = False, nice: int = -10
    ) -> subprocess.Popen[str]:
        """Burn one core inside ``host`` until its nginx restarts (see LabHost.burn)."""
        return self.hosts[host].burn(seconds, stubborn, nice)

    def query(self, promql: str) -> list[dict[str, Any]]:
        """The series an instant query yields now ([] while Prometheus does not answer)."""
        return services.query(self.prometheus_url, promql)

    def _wait_for_samples(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        wanted = {h.instance for h in self.hosts.values()}
        seen: set[str] = set()
        while time.monotonic() < deadline:
            result = self.query('node_cpu_seconds_total{mode="idle"}')
            seen = {s["metric"].get("instance", "") for s in result}
            if wanted <= seen:
                return
            if not self._tracked("prometheus").alive():
                raise LabError(
                    f"prometheus exited: {tail(self.directory / 'prometheus' / 'prometheus.log')}"
                )
            time.sleep(0.2)
        raise LabError(f"prometheus has no sample of {sorted(wanted - seen)} after {timeout}s")

    def _marker(self, kind: str, name: str = "") -> str:
        """The argument that the command line of the lab's process of ``kind`` holds."""
        if kind == "holder":
            return str(self.directory / "hosts" / name / "host.json")
        if kind == "exporter":
            return str(self.directory / "exporter.json")
        return services.prometheus_marker(self.directory)

    def _tracked(self, kind: str, spec: dict[str, Any] | None = None) -> Tracked:
        """The recorded process of ``kind`` (never alive when none is recorded)."""
        record = (spec or {}).get("process") if kind == "holder" else self.state.get(kind)
        if not isinstance(record, list) or len(record) != 2:
            return Tracked(0, 0.0, "\0")
        return Tracked(
            int(record[0]), float(record[1]), self._marker(kind, (spec or {}).get("name", ""))
        )

    def _host_from(self, spec: dict[str, Any]) -> LabHost:
        group = cgroups.of_host(self.state["id"], spec["name"], self.state["cgroup_version"])
        return LabHost(spec["name"], int(spec["ssh_port"]), int(spec["nginx_port"]),
                       int(spec["exporter_port"]), int(spec["holder"]), group)  # fmt: skip

    def status(self) -> dict[str, Any]:
        """What runs: each host's holder, nginx and sshd, the exporter and Prometheus."""
        return {
            "dir": str(self.directory),
            "prometheus": self._tracked("prometheus").alive(),
            "exporter": self._tracked("exporter").alive(),
            "hosts": {
                h.name: {"nginx_pid": h.nginx_pid(), "sshd": bool(h.sshd_pids())}
                for h in self.hosts.values()
            },
        }

    def down(self) -> None:
        """Stop everything the lab started and remove what it wrote; safe to repeat."""
        state = self.state
        self._tracked("prometheus").stop()
        self._tracked("exporter").stop()
        holders = [self._tracked("holder", spec) for spec in state.get("hosts", [])]
        for holder in holders:  # all at once: each ends its host's processes in parallel
            if holder.alive():
                os.kill(holder.pid, signal.SIGTERM)
        for holder in holders:
            holder.stop(timeout=5.0)
        for child in self._children:
            child.wait(timeout=5)
        if "cgroup_version" in state:
            for spec in state.get("hosts", []):
                group = cgroups.of_host(state["id"], spec["name"], state["cgroup_version"])
                group.kill_all()
                group.remove()
        for name in (*OWNED, STATE + ".tmp"):
            path = self.directory / name
            if path.is_dir() and not path.is_symlink():
                shutil.rmtree(path)
            elif path.exists() or path.is_symlink():
                path.unlink()
        if state.get("made_dir") and self.directory.is_dir() and not any(self.directory.iterdir()):
            self.directory.rmdir()
        self.hosts, self.state = {}, {}


def _number(name: str) -> int:
    return int(name.removeprefix("web"))
