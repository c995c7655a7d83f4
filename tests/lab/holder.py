"""The holder of one lab host: run as ``unshare --mount --propagation private python3 -I -S
holder.py <host.json>``, it is the first process of the host's mount namespace.

It enrols itself in the host's cgroups (before anything else, so every child inherits them),
mounts the host's private filesystems, starts nginx (init script) and sshd, writes
``ready.json`` and then stays as the namespace's keeper and its orphans' reaper until
SIGTERM, when it ends every other process of its cgroup. Standard library only: it runs on
the machine's python3, without the project's venv.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

LIBC = ctypes.CDLL(None, use_errno=True)
PR_SET_CHILD_SUBREAPER = 36
OPAQUE = "trusted.overlay.opaque"
PRIVATE = Path("/srv")  # an empty directory of every Debian system, hidden by the host's tmpfs
ENV = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}


def mount(source: str, target: str, fstype: str, options: str = "") -> None:
    """mount(2), raising OSError with the target named."""
    if LIBC.mount(source.encode(), target.encode(), fstype.encode(), 0, options.encode()) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {fstype} on {target} ({options}): {os.strerror(err)}")


def private_dir(path: Path, mode: int = 0o755) -> None:
    """A directory that hides whatever the machine has at the same place (overlay opaque)."""
    path.mkdir(parents=True, exist_ok=True)
    path.chmod(mode)
    os.setxattr(path, OPAQUE, b"y")


def layers_at(layers: Path) -> Path:
    """Make an overlay's upper and work dirs; return the upper one, to fill before mounting."""
    upper, work = layers / "upper", layers / "work"
    upper.mkdir(parents=True)
    work.mkdir()
    return upper


def mount_overlay(target: str, layers: Path) -> None:
    """Mount a copy-on-write overlay over ``target``, its layers made by ``layers_at``."""
    options = f"lowerdir={target},upperdir={layers / 'upper'},workdir={layers / 'work'}"
    mount("overlay", target, "overlay", options)


def prepare_etc(config: dict[str, Any], layers: Path) -> None:
    """The host's /etc: the machine's, with its own nginx config and sshd config and keys."""
    upper = layers_at(layers)
    shutil.copytree(config["nginx_template"], upper / "nginx", symlinks=True)
    os.setxattr(upper / "nginx", OPAQUE, b"y")
    site = Path(config["nginx_template"]).parent / "site.conf"
    text = site.read_text().replace("@PORT@", str(config["nginx_port"]))
    (upper / "nginx" / "sites-enabled" / "default").write_text(text)
    conf = upper / "nginx" / "nginx.conf"
    conf.write_text(conf.read_text().replace("worker_processes auto;", "worker_processes 1;"))
    ssh = upper / "ssh"
    ssh.mkdir(mode=0o755)
    for name, mode in (("ssh_host_ed25519_key", 0o600), ("ssh_host_ed25519_key.pub", 0o644)):
        shutil.copyfile(Path(config["host_key"]).parent / name, ssh / name)
        (ssh / name).chmod(mode)
    keys = ssh / "autosre_lab_authorized_keys"
    shutil.copyfile(config["authorized_keys"], keys)
    keys.chmod(0o600)
    (ssh / "sshd_config").write_text(
        Path(config["sshd_config"]).read_text().replace("@PORT@", str(config["ssh_port"]))
    )
    (ssh / "sshd_config").chmod(0o644)


def prepare_var(layers: Path) -> None:
    """The host's /var: the machine's, with private nginx logs and autosre state."""
    upper = layers_at(layers)
    private_dir(upper / "log" / "nginx")
    private_dir(upper / "lib" / "autosre", 0o750)


def set_up(config: dict[str, Any]) -> None:
    """Mount the host's filesystems (this process is alone in its new mount namespace)."""
    mount("lab", str(PRIVATE), "tmpfs", "size=32m,mode=0755")
    data = PRIVATE / "lab-data"
    data.mkdir()
    mount("lab", str(data), "tmpfs", f"size={config['data_mb']}m,mode=0755")
    for sub in ("log", "cache"):
        (data / sub).mkdir()
    prepare_etc(config, PRIVATE / ".layers" / "etc")
    prepare_var(PRIVATE / ".layers" / "var")
    mount_overlay("/etc", PRIVATE / ".layers" / "etc")
    mount_overlay("/var", PRIVATE / ".layers" / "var")
    mount("lab", "/run", "tmpfs", "size=16m,mode=0755")
    Path("/run/sshd").mkdir(mode=0o755)
    Path("/run/lock").mkdir(mode=0o1777)
    Path("/run/lock").chmod(0o1777)
    # /tmp stays the machine's: the project (and its venv, which the lab's burns run) may
    # live under it, as in a CI checkout.


def start_services() -> None:
    """nginx through its init script, then sshd; both daemonise and stay in the cgroup."""
    for argv in (["/etc/init.d/nginx", "start"], ["/usr/sbin/sshd"]):
        done = subprocess.run(
            argv, check=False, env=ENV, capture_output=True, text=True, timeout=30
        )
        if done.returncode != 0:
            raise RuntimeError(
                f"{' '.join(argv)} exited {done.returncode}: {done.stdout}{done.stderr}"
            )


def members(procs: Path) -> list[int]:
    """Pids in a cgroup.procs file other than this process."""
    try:
        pids = [int(line) for line in procs.read_text().split()]
    except OSError:
        return []
    return [pid for pid in pids if pid != os.getpid()]


def end_members(procs: Path, grace: float = 2.0) -> None:
    """SIGTERM every other member of the cgroup, then SIGKILL whatever lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in members(procs):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace
        while members(procs) and time.monotonic() < deadline:
            reap()
            time.sleep(0.05)


def reap(*_args: object) -> None:
    """Collect every exited child (this process is the namespace's subreaper)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


class StopRequestedError(Exception):
    """SIGTERM arrived."""


def stop(*_args: object) -> None:
    """Turn SIGTERM into StopRequestedError."""
    raise StopRequestedError


def main(config_path: str) -> int:
    """Set the host up, report readiness, keep it until SIGTERM."""
    config = json.loads(Path(config_path).read_text())
    for procs in config["cgroup_procs"]:
        Path(procs).write_text(str(os.getpid()))
    LIBC.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    signal.signal(signal.SIGTERM, stop)
    # The lab's directory may be under /tmp, which the host's own /tmp hides: keep a handle.
    ready = Path(config["ready"])
    ready_dir = os.open(ready.parent, os.O_RDONLY | os.O_DIRECTORY)
    try:
        set_up(config)
        start_services()
        pid = int(Path("/run/nginx.pid").read_text())
        report = json.dumps({"holder": os.getpid(), "nginx": pid}).encode()
        fd = os.open("ready.tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=ready_dir)
        os.write(fd, report)
        os.close(fd)
        os.rename("ready.tmp", ready.name, src_dir_fd=ready_dir, dst_dir_fd=ready_dir)
        signal.signal(signal.SIGCHLD, reap)
        while True:
            signal.pause()
    except StopRequestedError:
        pass
    except Exception as exc:  # reported to the lab through the log, then everything ends
        print(f"lab host {config.get('name')}: {exc}", file=sys.stderr, flush=True)
        end_members(Path(config["cgroup_procs"][0]))
        return 1
    end_members(Path(config["cgroup_procs"][0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
