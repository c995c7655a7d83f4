"""The compose demo's web host parts, run for real on this machine: the cgroup CPU exporter
(against cgroup files the test writes), keygen.sh with a real sshd and ssh client (host key
checking on), and the chaos script's burn with stress-ng."""

from __future__ import annotations

import importlib.util
import os
import shutil
import socket
import stat
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import psutil
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.conftest import COMPOSE_DIR, HOST_DIR, free_port, run, tool

EXPORTER = HOST_DIR / "cpu_exporter.py"
KEYGEN = COMPOSE_DIR / "keygen.sh"
CHAOS = HOST_DIR / "chaos.sh"
HOSTS = ("web1", "web2")
WAIT = 15.0  # seconds any process here gets to start or stop


def load_exporter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("cpu_exporter", EXPORTER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def cgroup_v2(root: Path, usage_usec: int, cpu_max: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "cpu.stat").write_text(f"usage_usec {usage_usec}\nuser_usec 1\nsystem_usec 1\n")
    (root / "cpu.max").write_text(f"{cpu_max}\n")
    return root


def counters(text: str) -> dict[str, float]:
    """mode -> value of node_cpu_seconds_total in an exposition."""
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "node_cpu_seconds_total":
                found[sample.labels["mode"]] = sample.value
    return found


def test_the_exporter_reads_cgroup_v2_and_v1(tmp_path: Path) -> None:
    exporter = load_exporter()
    v2 = cgroup_v2(tmp_path / "v2", 2_500_000, "50000 100000")
    assert exporter.usage_seconds(v2) == 2.5
    assert exporter.allowed_cpus(v2, online=4) == 0.5
    assert exporter.allowed_cpus(cgroup_v2(v2, 0, "max 100000"), online=4) == 4.0
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "cpuacct.usage").write_text("3000000000\n")
    (v1 / "cpu,cpuacct" / "cpu.cfs_quota_us").write_text("200000\n")
    (v1 / "cpu,cpuacct" / "cpu.cfs_period_us").write_text("100000\n")
    assert exporter.usage_seconds(v1) == 3.0
    assert exporter.allowed_cpus(v1, online=8) == 2.0
    assert exporter.allowed_cpus(v1, online=1) == 1.0, "never more than the CPUs online"
    with pytest.raises(FileNotFoundError):
        exporter.usage_seconds(tmp_path / "none")


def test_busy_and_idle_add_up_to_wall_time_and_never_go_back(tmp_path: Path) -> None:
    exporter = load_exporter()
    group = cgroup_v2(tmp_path, 10_000_000, "50000 100000")  # half a CPU
    now = [100.0]
    cpu = exporter.CpuCounters(cgroup=group, online=2, clock=lambda: now[0])
    now[0] += 10
    cgroup_v2(group, 15_000_000, "50000 100000")  # 5 s of CPU in 10 s: all of half a CPU
    assert cpu.read() == (10.0, 0.0)  # busy 100 %
    now[0] += 10  # 10 s more, no CPU used: idle 100 %
    assert cpu.read() == (10.0, 10.0)
    now[0] += 1
    cgroup_v2(group, 16_000_000, "50000 100000")  # a hair ahead of the quota
    user, idle = cpu.read()
    assert user == 12.0 and idle == 10.0, "idle holds still, never a counter reset"
    rendered = counters(exporter.render(user, idle))
    assert rendered == {"idle": 10.0, "user": 12.0}


@pytest.fixture
def exporter_server(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The exporter as the image runs it, on a free port, over cgroup files of the test's."""
    group = cgroup_v2(tmp_path / "cgroup", 0, "100000 100000")
    port = free_port()
    args = ["--host", "127.0.0.1", "--port", str(port), "--cgroup", str(group)]
    proc = subprocess.Popen([sys.executable, str(EXPORTER), *args], stdout=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/metrics"
    try:
        deadline = time.monotonic() + WAIT
        while True:
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "did not start"
                time.sleep(0.05)
        yield url, group
    finally:
        proc.terminate()
        proc.wait(timeout=WAIT)


def test_the_exporter_serves_the_busy_share_prometheus_computes(
    exporter_server: tuple[str, Path],
) -> None:
    url, group = exporter_server
    with urllib.request.urlopen(url, timeout=5) as answer:
        assert answer.headers["Content-Type"].startswith("text/plain; version=0.0.4")
        first = counters(answer.read().decode())
    started = time.monotonic()
    time.sleep(0.5)
    cgroup_v2(group, 400_000, "100000 100000")  # 0.4 s of one CPU
    with urllib.request.urlopen(url, timeout=5) as answer:
        second = counters(answer.read().decode())
    elapsed = time.monotonic() - started
    assert second["user"] - first["user"] == pytest.approx(0.4)
    busy = 1 - (second["idle"] - first["idle"]) / elapsed  # what rate(idle) gives
    assert busy == pytest.approx(0.4 / elapsed, abs=0.1)
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(url.replace("/metrics", "/other"), timeout=5)


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    """keygen.sh's output for web1 and web2, made by this user for this user."""
    tool("ssh-keygen")
    if os.geteuid() != 0:
        pytest.skip("keygen.sh hands files to other users: root only")
    env = {
        "PATH": "/usr/bin:/bin:/usr/sbin:/sbin",
        "KEYS_DIR": str(tmp_path / "keys"),
        "KEY_OWNER": "root",
        "DEMO_HOSTS": " ".join(HOSTS),
    }
    done = run(["sh", str(KEYGEN)], env=env)
    assert done.returncode == 0, done.stderr
    return tmp_path / "keys"


def test_keygen_makes_every_secret_once(keys: Path) -> None:
    known = (keys / "client" / "known_hosts").read_text().splitlines()
    for host, line in zip(HOSTS, known, strict=True):
        public = (keys / "hosts" / host / "ssh_host_ed25519_key.pub").read_text().split()
        assert line.split() == [host, *public[:2]]
    password = (keys / "db" / "password").read_text()
    assert len(password) == 64
    assert (keys / "db" / "pgpass").read_text() == f"postgres:5432:autosre:autosre:{password}\n"
    assert (keys / "hosts" / "authorized_keys").read_text() == (
        keys / "client" / "id_ed25519.pub"
    ).read_text()
    modes = {
        "client/id_ed25519": 0o600,
        "db/pgpass": 0o600,
        "db/password": 0o600,
        "alerts/token": 0o440,
        "hosts/web1/ssh_host_ed25519_key": 0o600,
    }
    for name, mode in modes.items():
        assert stat.S_IMODE((keys / name).stat().st_mode) == mode, name
    assert (keys / "alerts" / "token").stat().st_uid == 65534, "Alertmanager (nobody) reads it"
    before = {p: p.read_bytes() for p in keys.rglob("*") if p.is_file()}
    env = {"PATH": "/usr/bin:/bin", "KEYS_DIR": str(keys), "KEY_OWNER": "root"}
    done = run(["sh", str(KEYGEN)], env={**env, "DEMO_HOSTS": " ".join(HOSTS)})
    assert done.returncode == 0, done.stderr
    assert before == {p: p.read_bytes() for p in keys.rglob("*") if p.is_file()}
    done = run(["sh", str(KEYGEN)], env={**env, "DEMO_HOSTS": "web1 ../etc"})
    assert done.returncode == 2 and "not a host name" in done.stderr


def wait_for_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + WAIT
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            assert time.monotonic() < deadline and proc.poll() is None, "sshd did not start"
            time.sleep(0.05)


def test_the_engine_signs_in_to_a_host_with_host_key_checking(keys: Path, tmp_path: Path) -> None:
    # The host image's sshd.conf, with this machine's test overrides put first (sshd keeps
    # the first value it reads): this port, root instead of autosre, the keys from keygen.
    sshd = tool("sshd")
    port = free_port()
    authorized = tmp_path / "authorized_keys"
    shutil.copyfile(keys / "hosts" / "authorized_keys", authorized)
    ours = [ln for ln in (HOST_DIR / "sshd.conf").read_text().splitlines() if "HostKey" not in ln]
    config = tmp_path / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"Port {port}",
                "ListenAddress 127.0.0.1",
                f"HostKey {keys / 'hosts' / 'web1' / 'ssh_host_ed25519_key'}",
                f"AuthorizedKeysFile {authorized}",
                "StrictModes no",  # the test's files live under /tmp (world-writable)
                "PidFile none",
                "PermitRootLogin prohibit-password",
                "AllowUsers root",
                *ours,
                "",
            ]
        )
    )
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)  # sshd's privilege separation dir
    proc = subprocess.Popen([sshd, "-D", "-e", "-f", str(config)], stderr=subprocess.DEVNULL)
    try:
        wait_for_port(port, proc)
        client = ["ssh", "-F", "/dev/null", "-i", str(keys / "client" / "id_ed25519")]
        client += ["-o", f"UserKnownHostsFile={keys / 'client' / 'known_hosts'}"]
        client += ["-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes", "-p", str(port)]
        done = run([*client, "-o", "HostKeyAlias=web1", "root@127.0.0.1", "echo", "in"])
        assert done.returncode == 0 and done.stdout == "in\n", done.stderr
        # The same server posing as web2 is refused: known_hosts really is checked.
        done = run([*client, "-o", "HostKeyAlias=web2", "root@127.0.0.1", "true"])
        assert done.returncode != 0 and "HOST IDENTIFICATION HAS CHANGED" in done.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=WAIT)


def children(pid: int, name: str | None = None) -> list[psutil.Process]:
    try:
        found = psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []
    return [c for c in found if name is None or c.name() == name]


def running(process: psutil.Process) -> bool:
    try:
        return process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def test_the_burn_ends_when_nginx_restarts(tmp_path: Path) -> None:
    tool("stress-ng")
    pidfile = tmp_path / "nginx.pid"
    pidfile.write_text(f"{os.getpid()}\n")
    env = {"PATH": os.environ["PATH"], "NGINX_PIDFILE": str(pidfile)}
    burn = subprocess.Popen(
        ["sh", str(CHAOS), "cpu", "--seconds", "30"], env=env, stdout=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + WAIT
        while not (burners := children(burn.pid, "stress-ng")):
            assert time.monotonic() < deadline and burn.poll() is None, "no burn started"
            time.sleep(0.05)
        burners += children(burners[0].pid)  # stress-ng's workers
        pidfile.write_text("1\n")  # "nginx restarted": another master pid
        out, _ = burn.communicate(timeout=WAIT)
    finally:
        if burn.poll() is None:
            burn.kill()
            burn.wait(timeout=WAIT)
    assert burn.returncode == 0 and "the burn ends" in out, out
    deadline = time.monotonic() + WAIT
    while [p for p in burners if running(p)]:
        assert time.monotonic() < deadline, "stress-ng outlived the burn"
        time.sleep(0.05)


def test_the_chaos_script_refuses_what_it_does_not_know() -> None:
    for args in (["cpu", "--seconds", "ten"], ["cpu", "--hot"], ["fire"], []):
        done = run(["sh", str(CHAOS), *args])
        assert done.returncode == 2 and "usage" in done.stderr, args
