"""The files a lab writes into its directory: SSH keys, known_hosts, the nginx and sshd
templates its hosts start from, Prometheus's config and the inventory."""

from __future__ import annotations

import contextlib
import fcntl
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Protocol

from tests.lab.errors import LabError

NGINX_CONF = Path("/etc/nginx")
# The machine-wide lock tests/fixtures/nginx.py holds while a test edits /etc/nginx.
NGINX_TEST_LOCK = Path("/run/lock/autosre-nginx-tests.lock")
SITE = """server {
\tlisten 127.0.0.1:@PORT@ default_server;
\troot /var/www/html;
\tindex index.html index.htm index.nginx-debian.html;
\tserver_name _;
\tlocation / {
\t\ttry_files $uri $uri/ =404;
\t}
}
"""
SSHD_CONFIG = """# sshd of one lab host (written by tests/lab)
Port @PORT@
ListenAddress 127.0.0.1
HostKey /etc/ssh/ssh_host_ed25519_key
PidFile /run/sshd.pid
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
PubkeyAuthentication yes
AuthorizedKeysFile /etc/ssh/autosre_lab_authorized_keys
UsePAM no
StrictModes yes
PrintMotd no
Subsystem sftp /usr/lib/openssh/sftp-server
"""


class HostPorts(Protocol):
    """What the inventory and known_hosts need of a host."""

    name: str
    ssh_port: int
    nginx_port: int
    exporter_port: int


def keygen(path: Path, comment: str) -> subprocess.Popen[bytes]:
    """Start ssh-keygen for a new ed25519 key pair at ``path`` (no passphrase)."""
    return subprocess.Popen(
        ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", comment, "-f", str(path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def wait_all(procs: Sequence[subprocess.Popen[bytes]], what: str, timeout: float = 30.0) -> None:
    """Wait for every process (bounded); LabError naming ``what`` if one failed."""
    for proc in procs:
        try:
            _, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired as exc:
            proc.kill()
            proc.wait(timeout=5)
            raise LabError(f"{what}: {proc.args!r} took over {timeout}s") from exc
        if proc.returncode != 0:
            raise LabError(f"{what}: {proc.args!r} exited {proc.returncode}: {err!r}")


@contextlib.contextmanager
def nginx_conf_read_lock(timeout: float = 300.0) -> Iterator[None]:
    """Hold the nginx tests' lock shared: tests that edit /etc/nginx hold it exclusive, so
    the machine's config is never read mid-edit; readers do not block each other."""
    NGINX_TEST_LOCK.parent.mkdir(parents=True, exist_ok=True)
    with NGINX_TEST_LOCK.open("a") as handle:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except BlockingIOError as exc:
                if time.monotonic() > deadline:
                    raise LabError(f"{NGINX_TEST_LOCK} held for over {timeout}s") from exc
                time.sleep(0.1)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def copy_nginx_template(target: Path) -> None:
    """Copy the machine's /etc/nginx with no site or conf.d entry of its own: each host
    adds its one site, on its own port."""
    with nginx_conf_read_lock():
        shutil.copytree(NGINX_CONF, target / "nginx", symlinks=True)
    for sub in ("sites-enabled", "conf.d"):
        shutil.rmtree(target / "nginx" / sub)
        (target / "nginx" / sub).mkdir()
    (target / "site.conf").write_text(SITE)


def known_hosts(path: Path, hosts: Sequence[HostPorts], keys: Path) -> None:
    """One line per host: its port and the public host key the lab made for it."""
    lines = []
    for host in hosts:
        kind, key = (keys / host.name / "ssh_host_ed25519_key.pub").read_text().split()[:2]
        lines.append(f"[127.0.0.1]:{host.ssh_port} {kind} {key}")
    path.write_text("\n".join(lines) + "\n")


def inventory(path: Path, hosts: Sequence[HostPorts], key: Path, known: Path) -> None:
    """The inventory a user would write for these hosts (group ``web``)."""
    lines = ["[web]"]
    for host in hosts:
        lines.append(
            f"{host.name} ansible_host=127.0.0.1 ansible_port={host.ssh_port} ansible_user=root"
            f" autosre_instance=127.0.0.1:{host.exporter_port}"
            f" nginx_health_url=http://127.0.0.1:{host.nginx_port}/"
        )
    lines += [
        "",
        "[web:vars]",
        f"ansible_ssh_private_key_file={key}",
        f"ansible_ssh_common_args='-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes'",
        "ansible_python_interpreter=/usr/bin/python3",
        "nginx_service_manager=service",
    ]
    path.write_text("\n".join(lines) + "\n")
