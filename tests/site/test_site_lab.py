"""playbooks/site.yml for real, over SSH, on the fleet lab's hosts (tests/lab): the first
run installs and configures nginx, node_exporter and the known-good snapshot, the second
changes nothing, and rollback_nginx.yml then restores exactly what the site recorded.

What the lab cannot be, and how the run differs from one on a Debian VM:
- its hosts share this machine's /usr, where nginx and node_exporter are installed: the
  roles see dpkg's record and leave apt alone (apt's lists are never refreshed here);
- they have no systemd: services start, reload and are enabled through their init
  scripts (`nginx_service_manager=service` in the lab's inventory), not systemctl;
- the monitor play matches no host, and so the third play's roles (autosre_access,
  autosre_chaos, which write /home, /opt and /usr/local, shared with the machine) are
  skipped; tests/site/test_site_static.py renders the monitor's configs instead.
Each host's node_exporter listens on a loopback port of its own.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml

from tests.deploy.conftest import HOST_DIR, offline_pip
from tests.deploy.dockerfile import ScratchBuilder, stages
from tests.fixtures.prometheus import free_port
from tests.lab import Lab

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
SNAPSHOT = "var/lib/autosre/nginx-known-good"
RECAP = re.compile(
    r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M
)
# One of the lab's four hosts (the others show a limited run touches nothing else): the
# run is CPU-bound on a small machine, and every host more costs as much again.
LIMIT = ["web2"]
# Where the compose demo's host image is provisioned (its own test, at the end).
IMAGE_HOST = "web3"


@dataclass(frozen=True)
class Sited:
    """The lab after two site runs: each run's recap (host: changed count), its seconds,
    and each host's node_exporter address."""

    lab: Lab
    runs: list[dict[str, int]]
    seconds: list[float]
    masters: dict[str, tuple[int, set[int]]]  # before the first run: master, its workers
    exporters: dict[str, str]
    workdir: Path


def play(lab: Lab, workdir: Path, playbook: str, limit: list[str]) -> dict[str, int]:
    """Run a playbook on lab hosts (bounded); each host's changed count; fails on failure."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:{os.defpath}",
        "HOME": str(workdir),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_HOST_KEY_CHECKING": "True",
        "ANSIBLE_PIPELINING": "1",
        "ANSIBLE_SSH_CONTROL_PATH_DIR": str(workdir / "cp"),
        "ANSIBLE_LOCAL_TEMP": str(workdir / "ansible-tmp"),
    }
    argv = [str(Path(sys.executable).parent / "ansible-playbook")]
    argv += ["-i", str(lab.inventory_path), "-i", str(workdir / "site-vars.yml")]
    argv += ["--limit", ",".join(limit), str(PLAYBOOKS / playbook)]
    done = subprocess.run(
        argv, capture_output=True, text=True, env=env, timeout=120, check=False, cwd=workdir
    )
    recap = {m[1]: [int(n) for n in m.groups()[1:]] for m in RECAP.finditer(done.stdout)}
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert set(recap) == set(limit), done.stdout[-2000:]
    assert all(failed == 0 and unreachable == 0 for _, _, unreachable, failed in recap.values())
    return {host: changed for host, (_ok, changed, _u, _f) in recap.items()}


@pytest.fixture(scope="module")
def sited(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Sited:
    """site.yml run twice on LIMIT, with a second inventory source: each host's nginx site
    on its lab port, its node_exporter on a free port, apt's lists left alone (no network)."""
    workdir = tmp_path_factory.mktemp("site")
    exporters = {name: f"127.0.0.1:{free_port()}" for name in LIMIT}
    hosts = {
        name: {
            "nginx_listen": f"127.0.0.1:{lab.hosts[name].nginx_port}",
            "node_exporter_listen_address": exporters[name],
        }
        for name in LIMIT
    }
    group = {"hosts": hosts, "vars": {"nginx_apt_update": False, "node_exporter_apt_update": False}}
    (workdir / "site-vars.yml").write_text(yaml.safe_dump({"all": {"children": {"web": group}}}))
    masters = {name: nginx_processes(lab, name) for name in LIMIT}
    runs, seconds = [], []
    for _ in range(2):
        began = time.monotonic()
        runs.append(play(lab, workdir, "site.yml", LIMIT))
        seconds.append(round(time.monotonic() - began, 1))
    return Sited(lab, runs, seconds, masters, exporters, workdir)


def nginx_processes(lab: Lab, name: str) -> tuple[int, set[int]]:
    """A lab host's nginx master pid and its workers' pids."""
    master = lab.hosts[name].nginx_pid()
    assert master is not None, f"{name}: nginx is not running"
    return master, {child.pid for child in psutil.Process(master).children()}


def get(url: str) -> str:
    """The body at ``url`` (bounded wait)."""
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


def test_the_first_run_configures_and_the_second_changes_nothing(sited: Sited) -> None:
    first, second = sited.runs
    assert all(changed > 0 for changed in first.values()), first
    assert second == dict.fromkeys(LIMIT, 0), f"not idempotent: {second} ({sited.seconds} s)"


def test_each_host_serves_its_site_exports_metrics_and_holds_the_snapshot(sited: Sited) -> None:
    lab = sited.lab
    for name in LIMIT:
        host = lab.hosts[name]
        root = host.root
        # The role's site replaced Debian's default and passes nginx's own check.
        site = (root / "etc/nginx/sites-available/autosre").read_text()
        assert f"listen 127.0.0.1:{host.nginx_port} default_server;" in site
        link = (root / "etc/nginx/sites-enabled/autosre").readlink()
        assert link == Path("../sites-available/autosre")
        assert not (root / "etc/nginx/sites-enabled/default").exists()
        lab.run_in(name, ["/usr/sbin/nginx", "-t"])
        assert "nginx" in get(host.nginx_url)
        # The handler reloaded it (through the init script): same master, new workers.
        master, workers = sited.masters[name]
        assert nginx_processes(lab, name)[0] == master
        assert not nginx_processes(lab, name)[1] & workers
        # The snapshot is where rollback_nginx.yml looks: an exact mirror of /etc/nginx.
        assert (root / SNAPSHOT / "nginx.conf").is_file()
        lab.run_in(name, ["diff", "-r", "--no-dereference", "/etc/nginx", f"/{SNAPSHOT}"])
        # node_exporter runs inside the host, on the address the inventory gave it.
        assert "node_cpu_seconds_total" in get(f"http://{sited.exporters[name]}/metrics")
    # Hosts the run was limited to are untouched.
    others = [n for n in lab.hosts if n not in [*LIMIT, IMAGE_HOST]]
    assert not any((lab.hosts[n].root / SNAPSHOT).exists() for n in others)


def test_rollback_restores_the_snapshot_the_site_recorded(sited: Sited) -> None:
    lab, web2 = sited.lab, sited.lab.hosts["web2"]
    stray = web2.root / "etc/nginx/conf.d/stray.conf"
    stray.write_text("# added after the site run: not known-good\n")
    assert play(lab, sited.workdir, "rollback_nginx.yml", ["web2"])["web2"] > 0
    assert not stray.exists()
    lab.run_in("web2", ["diff", "-r", "--no-dereference", "/etc/nginx", f"/{SNAPSHOT}"])
    assert "nginx" in get(web2.nginx_url)


def test_the_demo_host_image_is_provisioned_by_the_site_playbook(lab: Lab, tmp_path: Path) -> None:
    """deploy/compose/host's build step for real, inside a lab host (its own /etc, /var and
    /run): the Dockerfile's COPY steps lay the checkout out as in the image, provision.sh
    installs the pinned ansible-core in a venv and runs site.yml's web play locally, with
    no service touched, and leaves nothing of itself behind."""
    dockerfile = stages((HOST_DIR / "Dockerfile").read_text())[-1]
    runs = [step.args for step in dockerfile.all("RUN")]
    assert "sh /opt/provision/provision.sh" in runs, runs
    builder = ScratchBuilder(ROOT, tmp_path / "root", path="/usr/bin:/bin", timeout=240.0)
    builder.run_stage(dockerfile, run_steps=False)  # apt-get and useradd: not on this machine
    script = Path(builder.rerooted("/opt/provision/provision.sh"))
    host = lab.hosts[IMAGE_HOST]
    before = nginx_processes(lab, IMAGE_HOST)
    env = {
        **offline_pip(),
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path / "home"),
        "LANG": "C.UTF-8",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
    }
    argv = ["env", "-i", *(f"{k}={v}" for k, v in env.items()), "sh", str(script)]
    # The lab host's own port, apt's lists left alone (this machine's packages are its).
    argv += ["-e", f"nginx_listen=127.0.0.1:{host.nginx_port}"]
    argv += ["-e", "nginx_apt_update=false", "-e", "node_exporter_apt_update=false"]
    done = host.run_in(argv, timeout=240.0, check=False)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    recap = {m[1]: [int(n) for n in m.groups()[1:]] for m in RECAP.finditer(done.stdout)}
    assert set(recap) == {"web-image"} and recap["web-image"][1] > 0, done.stdout[-2000:]
    assert recap["web-image"][2:] == [0, 0], done.stdout[-2000:]

    root = host.root
    site = (root / "etc/nginx/sites-available/autosre").read_text()
    assert f"listen 127.0.0.1:{host.nginx_port} default_server;" in site
    assert not (root / "etc/nginx/sites-enabled/default").exists()
    lab.run_in(IMAGE_HOST, ["diff", "-r", "--no-dereference", "/etc/nginx", f"/{SNAPSHOT}"])
    # The entrypoint starts node_exporter with what the site wrote: this flag included.
    flags = lab.run_in(
        IMAGE_HOST, ["sh", "-c", ". /etc/default/prometheus-node-exporter && echo $ARGS"]
    )
    assert flags.split() == ["--web.listen-address=:9100", "--no-collector.cpu"]
    # A build has no running system: nothing was started, reloaded or restarted.
    assert nginx_processes(lab, IMAGE_HOST) == before, done.stdout
    assert not script.parent.exists(), "the provisioning (and its venv) stays in the image"
    assert not (root / "etc/apt/apt.conf.d/99autosre-provision").exists()
    assert not list((root / "var/lib/apt/lists").glob("*_Packages"))
