"""The SSH lab (tests/lab): isolated hosts, reached by Ansible over real SSH, each with its
own CPU, memory, disk and probe signals in a real Prometheus, and nothing left after down.

One 4-host lab serves the module (the ``lab`` fixture); the life-cycle test brings up a
1-host lab of its own through the CLI.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import ansible_runner
import psutil
import pytest

from tests.lab import Lab, LabError
from tests.lab.exporter import Host
from tests.lab.files import NGINX_CONF, nginx_conf_read_lock

pytestmark = [pytest.mark.integration, pytest.mark.serial]

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
CPU = '100 * (1 - avg by (instance) (irate(node_cpu_seconds_total{mode="idle"}[3s])))'
MiB = 1 << 20


def by_instance(lab: Lab, promql: str) -> dict[str, float]:
    """The value of each series of an instant query, keyed by host name."""
    names = {host.instance: name for name, host in lab.hosts.items()}
    return {
        names[s["metric"]["instance"]]: float(s["value"][1])
        for s in lab.query(promql)
        if s["metric"].get("instance") in names
    }


def wait_for(
    lab: Lab, promql: str, holds: Callable[[dict[str, float]], bool], timeout: float = 15.0
) -> dict[str, float]:
    """Poll a query until ``holds`` is true of its values by host; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    values: dict[str, float] = {}
    while time.monotonic() < deadline:
        values = by_instance(lab, promql)
        if len(values) == len(lab.hosts) and holds(values):
            return values
        time.sleep(0.25)
    raise AssertionError(f"{promql}: never as expected within {timeout}s, last {values}")


def run_ansible(
    lab: Lab, tmp_path: Path, limit: str, playbook: str | None = None, inventory: Path | None = None
) -> Any:
    """A real ansible-runner run over SSH (a playbook, else the ping module), from a fresh
    controller: no SSH master connection of an earlier run is reused."""
    kwargs: dict[str, Any] = (
        {"playbook": str(PLAYBOOKS / playbook)}
        if playbook
        else {"module": "ansible.builtin.ping", "host_pattern": limit}
    )
    (tmp_path / "runner").mkdir(parents=True, exist_ok=True)
    return ansible_runner.run(
        private_data_dir=str(tmp_path / "runner"),
        inventory=str(inventory or lab.inventory_path),
        limit=limit,
        quiet=True,
        timeout=120,
        # ansible-playbook lives beside this interpreter (the venv), which may not be on PATH.
        envvars={
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOST_KEY_CHECKING": "True",  # as the engine runs it (runner's is False)
            "ANSIBLE_PIPELINING": "1",  # fewer SSH round trips per task: a shorter module
            "ANSIBLE_SSH_CONTROL_PATH_DIR": str(tmp_path / "cp"),
            "PATH": f"{Path(sys.executable).parent}:{os.defpath}",
        },
        **kwargs,
    )


def output(runner: Any) -> str:
    """The run's stdout, for a failure message."""
    with runner.stdout as handle:
        return str(handle.read())


def unreachable_messages(runner: Any, host: str) -> list[str]:
    """Ansible's messages for each unreachable event of ``host``."""
    return [
        str(event["event_data"].get("res", {}).get("msg", ""))
        for event in runner.events
        if event.get("event") == "runner_on_unreachable"
        and event.get("event_data", {}).get("host") == host
    ]


def pids(lab: Lab) -> dict[str, int | None]:
    """Each host's nginx master pid."""
    return {name: host.nginx_pid() for name, host in lab.hosts.items()}


def test_hosts_are_isolated(lab: Lab) -> None:
    masters = pids(lab)
    assert None not in masters.values() and len(set(masters.values())) == 4
    namespaces = {Path(f"/proc/{h.holder_pid}/ns/mnt").readlink() for h in lab.hosts.values()}
    assert len(namespaces) == 4 and Path("/proc/self/ns/mnt").readlink() not in namespaces
    for name, host in lab.hosts.items():
        with urllib.request.urlopen(host.nginx_url, timeout=2) as response:
            assert response.status == 200
        site = (host.root / "etc/nginx/sites-enabled/default").read_text()
        assert f"listen 127.0.0.1:{host.nginx_port} default_server;" in site
        assert {masters[name], *host.sshd_pids()} <= host.cgroup.pids()
        assert (host.root / "srv/lab-data/log").is_dir()
    assert not Path("/srv/lab-data").exists()  # the data fs exists inside the hosts only
    # The inventory maps each Prometheus instance label (port included) to one host.
    inventory = lab.inventory_path.read_text()
    for name, host in lab.hosts.items():
        assert f"{name} ansible_host=127.0.0.1 ansible_port={host.ssh_port} " in inventory
        assert f"autosre_instance={host.instance} " in inventory
    assert set(by_instance(lab, "up == 1")) == set(lab.hosts)


def test_ansible_restarts_and_rolls_back_web2_only_over_ssh(lab: Lab, tmp_path: Path) -> None:
    before = pids(lab)
    restart = run_ansible(lab, tmp_path, "web2", "restart_nginx.yml")
    assert restart.status == "successful", output(restart)
    after = pids(lab)
    assert after["web2"] not in (None, before["web2"])
    assert {n: p for n, p in after.items() if n != "web2"} == {
        n: p for n, p in before.items() if n != "web2"
    }
    web2 = lab.hosts["web2"]
    assert (web2.root / "var/lib/autosre/nginx-known-good/nginx.conf").is_file()
    assert not (lab.hosts["web1"].root / "var/lib/autosre/nginx-known-good").exists()
    # A broken config inside web2 only; rollback_nginx.yml restores the snapshot over SSH.
    web2.run_in(["sh", "-c", "echo 'not nginx' > /etc/nginx/conf.d/broken.conf"])
    assert not (NGINX_CONF / "conf.d" / "broken.conf").exists()
    rollback = run_ansible(lab, tmp_path, "web2", "rollback_nginx.yml")
    assert rollback.status == "successful", output(rollback)
    assert not (web2.root / "etc/nginx/conf.d/broken.conf").exists()
    web2.run_in(["/usr/sbin/nginx", "-t"])
    with urllib.request.urlopen(web2.nginx_url, timeout=2) as response:
        assert response.status == 200
    assert {n: p for n, p in pids(lab).items() if n != "web2"} == {
        n: p for n, p in before.items() if n != "web2"
    }


def test_a_burn_on_web2_raises_web2_cpu_only(lab: Lab) -> None:
    web2 = lab.hosts["web2"]
    # Quiet first: an Ansible run of an earlier test shows in its host's CPU for a while.
    wait_for(lab, CPU, lambda v: max(v.values()) < 30, timeout=20)
    burn = web2.burn(60)
    try:
        for _ in range(3):  # three samples in a row, not one spike
            values = wait_for(lab, CPU, lambda v: v["web2"] > 80, timeout=20)
            others = {name: value for name, value in values.items() if name != "web2"}
            assert max(others.values()) < 30, values
            time.sleep(1.0)
        web2.run_in(["service", "nginx", "restart"])
        output, _ = burn.communicate(timeout=15)
        assert output.startswith("nginx_restarted"), output  # it watched web2's own pidfile
        wait_for(lab, CPU, lambda v: v["web2"] < 30, timeout=15)
    finally:
        if burn.poll() is None:
            burn.terminate()
            burn.communicate(timeout=10)


def test_memory_and_disk_signals_move_on_one_host(lab: Lab) -> None:
    web4 = lab.hosts["web4"]
    memory = by_instance(lab, "node_memory_MemAvailable_bytes")
    hog = web4.spawn_in(
        ["/usr/bin/python3", "-c", "import time\nb = b'x' * (128 << 20)\nprint('held', flush=True)"
         "\ntime.sleep(60)"]
    )  # fmt: skip
    try:
        assert hog.stdout is not None and hog.stdout.readline().strip() == "held"
        seen = wait_for(
            lab,
            "node_memory_MemAvailable_bytes",
            lambda v: v["web4"] < memory["web4"] - 100 * MiB,
        )
        for name in ("web1", "web2", "web3"):
            assert abs(seen[name] - memory[name]) < 20 * MiB, (name, seen, memory)
    finally:
        hog.terminate()
        hog.communicate(timeout=10)
    query = 'node_filesystem_avail_bytes{mountpoint="/srv/lab-data"}'
    web4.run_in(["fallocate", "-l", "48M", "/srv/lab-data/log/fill.log"])
    try:
        seen = wait_for(lab, query, lambda v: v["web4"] < 20 * MiB)
        assert all(seen[name] == 64 * MiB for name in ("web1", "web2", "web3")), seen
    finally:
        web4.run_in(["rm", "-f", "/srv/lab-data/log/fill.log"])
    wait_for(lab, query, lambda v: v["web4"] == 64 * MiB)


def test_probe_fails_only_where_nginx_is_stopped(lab: Lab) -> None:
    web1 = lab.hosts["web1"]
    web1.stop_nginx()
    try:
        seen = wait_for(lab, "probe_success", lambda v: v["web1"] == 0)
        assert all(seen[name] == 1 for name in ("web2", "web3", "web4")), seen
    finally:
        web1.start_nginx()
    wait_for(lab, "probe_success", lambda v: all(value == 1 for value in v.values()))


def test_a_host_without_sshd_is_unreachable_while_the_others_are_remediated(
    lab: Lab, tmp_path: Path
) -> None:
    web3 = lab.hosts["web3"]
    before = pids(lab)
    web3.stop_sshd()
    try:
        runner = run_ansible(lab, tmp_path, "web", "restart_nginx.yml")
        assert set(runner.stats["dark"]) == {"web3"}, runner.stats
        assert any("Connection refused" in m for m in unreachable_messages(runner, "web3"))
        after = pids(lab)
        assert after["web3"] == before["web3"]
        assert all(after[n] not in (None, before[n]) for n in ("web1", "web2", "web4")), after
    finally:
        web3.start_sshd()
    assert run_ansible(lab, tmp_path / "again", "web3").status == "successful"


def test_a_host_presenting_another_key_is_refused(lab: Lab, tmp_path: Path) -> None:
    """An impostor on web1's port: known_hosts names web2's key there, and checking is on."""
    web1, web2 = lab.hosts["web1"], lab.hosts["web2"]
    known = lab.known_hosts_path.read_text().splitlines()
    web2_key = next(line for line in known if line.startswith(f"[127.0.0.1]:{web2.ssh_port} "))
    forged = tmp_path / "known_hosts"
    forged.write_text(web2_key.replace(str(web2.ssh_port), str(web1.ssh_port), 1) + "\n")
    inventory = tmp_path / "inventory.ini"
    inventory.write_text(
        lab.inventory_path.read_text().replace(str(lab.known_hosts_path), str(forged))
    )
    runner = run_ansible(lab, tmp_path, "web1", inventory=inventory)
    assert set(runner.stats["dark"]) == {"web1"}
    assert any("Host key verification failed" in m for m in unreachable_messages(runner, "web1"))


def test_a_forged_lab_record_touches_nothing_it_did_not_start(tmp_path: Path) -> None:
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        started = psutil.Process(bystander.pid).create_time()
        (tmp_path / "notes.txt").write_text("mine")
        record = {
            "id": "abcdef", "made_dir": True, "cgroup_version": 1, "prometheus_port": 9,
            "prometheus": [bystander.pid, started], "exporter": [bystander.pid, started],
            "hosts": [{"name": "web1", "ssh_port": 1, "nginx_port": 2, "exporter_port": 3,
                       "process": [bystander.pid, started], "holder": bystander.pid}],
        }  # fmt: skip
        (tmp_path / "lab.json").write_text(json.dumps(record))
        Lab.attach(tmp_path).down()
        assert bystander.poll() is None  # not the lab's: its command line names no lab file
        assert (tmp_path / "notes.txt").read_text() == "mine"
        # A record naming a cgroup outside the lab's own is refused outright.
        record["id"] = "../../memory"
        (tmp_path / "lab.json").write_text(json.dumps(record))
        with pytest.raises(LabError, match="not a lab id"):
            Lab.attach(tmp_path).down()
        assert bystander.poll() is None
    finally:
        bystander.kill()
        bystander.wait(timeout=5)


def test_exporter_reads_cgroup_v2_and_caps_cpu_at_the_host_cpus(tmp_path: Path) -> None:
    cpu, mem, stat = tmp_path / "cpu.stat", tmp_path / "memory.current", tmp_path / "memory.stat"
    cpu.write_text("usage_usec 1000000\nuser_usec 900000\n")
    mem.write_text(str(100 * MiB))
    stat.write_text(f"anon {60 * MiB}\nfile {40 * MiB}\n")
    paths = {"kind": "v2", "cpu": str(cpu), "mem": str(mem), "stat": str(stat)}
    spec = {"name": "web1", "cpus": 1, "nginx_port": 9, "memory_bytes": 256 * MiB, "cgroup": paths}
    host = Host(spec)
    assert host.memory_used() == 60 * MiB  # page cache (and tmpfs files) excluded
    time.sleep(0.05)
    cpu.write_text("usage_usec 901000000\n")  # 900 s "used" in 50 ms: more than one CPU has
    idle, busy = host.cpu()
    assert 0.04 < busy < 0.5 and idle == pytest.approx(0.0, abs=1e-6)
    assert host.cpu()[1] >= busy  # counters never go back
    assert host.probe(0.5)[0] == 0  # nothing listens on port 9


def _lab_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "tests.lab", *args],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip


def _tree(root: Path) -> dict[str, bytes | str]:
    return {
        str(p.relative_to(root)): str(p.readlink()) if p.is_symlink() else p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_symlink() or p.is_file()
    }


def _machine_nginx_pid() -> int | None:
    try:
        pid = int(Path("/run/nginx.pid").read_text())
    except (OSError, ValueError):
        return None
    return pid if psutil.pid_exists(pid) else None


def test_cli_life_cycle_leaves_nothing_and_never_touches_the_machines_nginx(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "lab"
    for bad in (["up", "--hosts", "0", "--dir", str(directory)], ["up", "--dir", "/etc"]):
        refused = _lab_cli(*bad)
        assert refused.returncode == 2 and "Traceback" not in refused.stderr, refused.stderr
    with nginx_conf_read_lock():  # no nginx test edits or restarts the machine's meanwhile
        machine_pid, machine_conf = _machine_nginx_pid(), _tree(NGINX_CONF)
        up = _lab_cli("up", "--hosts", "1", "--dir", str(directory))
        assert up.returncode == 0, up.stderr
        assert f"AUTOSRE_INVENTORY={directory}/inventory.ini" in up.stdout
        again = _lab_cli("up", "--hosts", "1", "--dir", str(directory))
        assert again.returncode == 2 and "already runs" in again.stderr
        assert json.loads(_lab_cli("status", "--dir", str(directory)).stdout)["prometheus"]
        lab = Lab.attach(directory)
        state, web1 = lab.state, lab.hosts["web1"]
        namespace = str(Path(f"/proc/{web1.holder_pid}/ns/mnt").readlink())
        burn = web1.burn(30)
        try:
            assert any(_is_stress(pid) for pid in web1.cgroup.pids())  # burn() waited for it
            down = _lab_cli("down", "--dir", str(directory))  # the burn is still running
            assert down.returncode == 0, down.stderr
            burn.communicate(timeout=15)
        finally:
            if burn.poll() is None:
                os.killpg(burn.pid, signal.SIGKILL)
                burn.communicate(timeout=10)
        assert _machine_nginx_pid() == machine_pid
        assert _tree(NGINX_CONF) == machine_conf
    assert not directory.exists()
    started = [state["prometheus"][0], state["exporter"][0], web1.holder_pid]
    assert not [pid for pid in started if psutil.pid_exists(pid) and _not_zombie(pid)]
    cgroups = [
        d
        for h in ("cpuacct", "memory", "")
        for d in Path("/sys/fs/cgroup", h).glob("autosre-lab-*")
    ]
    assert f"autosre-lab-{state['id']}" not in {d.name for d in cgroups}
    assert not [p for p in Path("/proc").glob("[0-9]*/ns/mnt") if _readlink(p) == namespace]


def _is_stress(pid: int) -> bool:
    try:
        return psutil.Process(pid).name().startswith("stress-ng")
    except psutil.Error:
        return False


def _not_zombie(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def _readlink(path: Path) -> str | None:
    try:
        return str(path.readlink())
    except OSError:
        return None
