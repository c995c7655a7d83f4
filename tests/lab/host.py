"""One lab host as tests see it: its ports, its processes, and commands run inside it.

A command "inside" a host joins the host's cgroups first (so its CPU and memory count as
the host's) and then its mount namespace (so /run/nginx.pid, /etc/nginx and /srv/lab-data
are the host's own), through ``nsenter --target <holder pid> --mount``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tests.lab.cgroups import HostCgroup
from tests.lab.errors import LabError

SSHD = Path("/usr/sbin/sshd")
# Join each cgroup.procs file named before "--", then exec what follows it.
_ENROL = (
    'for f in "$@"; do [ "$f" = -- ] && break; echo $$ > "$f" || exit 125; shift; done; '
    'shift; exec "$@"'
)
# The project's own burner on one core: the host has one CPU, and a burn fills it.
_BURN = (
    "import sys\n"
    "from autosre.chaos import burn_cpu\n"
    "outcome = burn_cpu(seconds=float(sys.argv[1]), stubborn=sys.argv[2] == '1', workers=1)\n"
    "print(outcome.reason, round(outcome.duration, 2), flush=True)\n"
)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _is_burner(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/comm").read_text().startswith("stress-ng")
    except OSError:
        return False


def wait_for_port(port: int, timeout: float, *, open_: bool = True) -> bool:
    """Wait until 127.0.0.1:port accepts (or, with open_=False, refuses) connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                accepting = True
        except OSError:
            accepting = False
        if accepting == open_:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)


@dataclass
class LabHost:
    """A lab host: name, ports, holder pid, cgroup; methods act inside it."""

    name: str
    ssh_port: int
    nginx_port: int
    exporter_port: int
    holder_pid: int
    cgroup: HostCgroup

    @property
    def instance(self) -> str:
        """The instance label Prometheus gives this host's series."""
        return f"127.0.0.1:{self.exporter_port}"

    @property
    def nginx_url(self) -> str:
        """The host's nginx, as its health URL."""
        return f"http://127.0.0.1:{self.nginx_port}/"

    @property
    def root(self) -> Path:
        """The host's filesystem as seen from the machine (its mount namespace's root)."""
        return Path(f"/proc/{self.holder_pid}/root")

    def _pid_in(self, pidfile: str) -> int | None:
        try:
            pid = int((self.root / pidfile.lstrip("/")).read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) else None

    def nginx_pid(self) -> int | None:
        """The master pid in the host's /run/nginx.pid, if that process lives."""
        return self._pid_in("/run/nginx.pid")

    def wait_for_new_nginx(self, old: int | None, timeout: float = 15.0) -> int:
        """Wait until a live nginx master other than ``old`` runs; LabError after timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            pid = self.nginx_pid()
            if pid is not None and pid != old:
                return pid
            time.sleep(0.05)
        raise LabError(f"{self.name}: nginx master still {self.nginx_pid()} after {timeout}s")

    def enter_argv(self, argv: list[str]) -> list[str]:
        """``argv`` wrapped so it runs in the host's cgroups and mount namespace."""
        procs = [str(path) for path in self.cgroup.procs_files]
        nsenter = ["nsenter", f"--target={self.holder_pid}", "--mount", "--"]
        return ["sh", "-c", _ENROL, "enrol", *procs, "--", *nsenter, *argv]

    def run_in(
        self, argv: list[str], *, timeout: float = 60.0, check: bool = True
    ) -> subprocess.CompletedProcess[str]:
        """Run a command inside the host and wait for it (bounded); LabError on failure."""
        try:
            done = subprocess.run(
                self.enter_argv(argv),
                check=False,
                capture_output=True,
                text=True,
                timeout=timeout,
                cwd="/",
            )
        except subprocess.TimeoutExpired as exc:
            raise LabError(f"{self.name}: {argv} did not end within {timeout}s") from exc
        if check and done.returncode != 0:
            raise LabError(f"{self.name}: {argv} exited {done.returncode}: {done.stderr[-500:]}")
        return done

    def spawn_in(self, argv: list[str]) -> subprocess.Popen[str]:
        """Start a command inside the host in the background; the caller stops it by pid."""
        return subprocess.Popen(
            self.enter_argv(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            cwd="/",
            start_new_session=True,
        )

    def burn(
        self, seconds: float, stubborn: bool = False, nice: int = -10
    ) -> subprocess.Popen[str]:
        """Burn one core inside the host with autosre.chaos until its nginx restarts (or,
        stubborn, until ``seconds``); returns the running burn, whose output says why it
        ended."""
        if self.nginx_pid() is None and not stubborn:
            raise LabError(f"{self.name}: nginx is not running, a burn would not end on restart")
        # A raised priority stands in for the dedicated core a real host's CPU is: on a
        # shared machine, other work would otherwise hold the burn (and the host's reading)
        # well under 100 %.
        argv = ["nice", "-n", str(nice), sys.executable, "-c", _BURN, str(seconds)]
        argv.append("1" if stubborn else "0")
        burn = self.spawn_in(argv)
        # Return once the burner runs: a restart before that would go unseen.
        deadline = time.monotonic() + 15.0
        while not any(_is_burner(pid) for pid in self.cgroup.pids()):
            if burn.poll() is not None or time.monotonic() > deadline:
                output = burn.communicate(timeout=5)[0] if burn.poll() is not None else ""
                if burn.poll() is None:
                    burn.kill()
                    burn.communicate(timeout=5)
                raise LabError(f"{self.name}: the burn did not start: {output[-500:]}")
            time.sleep(0.05)
        return burn

    def sshd_pids(self) -> list[int]:
        """Every sshd process of the host: the listener and its sessions."""
        found = []
        for pid in self.cgroup.pids():
            try:
                if Path(f"/proc/{pid}/exe").readlink() == SSHD:
                    found.append(pid)
            except OSError:
                continue
        return found

    def stop_sshd(self, timeout: float = 5.0) -> None:
        """Make the host unreachable: end its sshd and every session it serves (an Ansible
        ControlPersist master would otherwise still get through)."""
        for pid in self.sshd_pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while any(_alive(pid) for pid in self.sshd_pids()):
            if time.monotonic() > deadline:
                raise LabError(f"{self.name}: sshd still runs {timeout}s after SIGTERM")
            time.sleep(0.05)
        if not wait_for_port(self.ssh_port, timeout, open_=False):
            raise LabError(f"{self.name}: port {self.ssh_port} still accepts after sshd stopped")

    def start_sshd(self, timeout: float = 10.0) -> None:
        """Start the host's sshd again and wait until it accepts connections."""
        self.run_in([str(SSHD)], timeout=timeout)
        if not wait_for_port(self.ssh_port, timeout):
            raise LabError(f"{self.name}: sshd does not accept on port {self.ssh_port}")

    def stop_nginx(self) -> None:
        """Stop the host's nginx through its init script."""
        self.run_in(["/etc/init.d/nginx", "stop"])

    def start_nginx(self) -> None:
        """Start the host's nginx through its init script."""
        self.run_in(["/etc/init.d/nginx", "start"])
