"""Chaos: nginx down, as a crash or a bad deploy would leave it.

``stop_nginx`` stops nginx through its service manager and waits until something starts it
again (the engine's start_nginx, say). A stubborn outage also drops a broken file into
nginx's conf.d first, so a plain start fails and only a rollback (or the end of the
experiment) helps. At the end the config is always as it was: the broken file, if still
there, is removed, and nginx is started again if it is still down.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from autosre.chaos import interrupt_on_sigterm, read_pid
from engine.errors import ChaosError

BROKEN_NAME = "autosre-chaos-broken.conf"
# An unknown directive: `nginx -t` fails, naming this file.
BROKEN_TEXT = "# written by `autosre chaos nginx-down --stubborn`; removed at its end\n"
BROKEN_TEXT += "autosre_chaos_broken_directive on;\n"
SERVICE_TIMEOUT = 30.0

DownReason = Literal["nginx_started", "timeout", "interrupted"]


@dataclass(frozen=True, slots=True)
class DownOutcome:
    """Why the outage ended, how long it lasted (seconds), and what the end put back."""

    reason: DownReason
    duration: float
    restored: tuple[str, ...] = ()


def _service(action: str) -> subprocess.CompletedProcess[str]:
    # One of two constant command shapes, chosen by whether systemd runs this machine.
    systemd = Path("/run/systemd/system").is_dir()
    argv = ["systemctl", action, "nginx"] if systemd else ["service", "nginx", action]
    return subprocess.run(
        argv, check=False, capture_output=True, text=True, timeout=SERVICE_TIMEOUT
    )


def stop_nginx(
    *,
    seconds: float,
    stubborn: bool = False,
    pidfile: Path = Path("/run/nginx.pid"),
    conf_dir: Path = Path("/etc/nginx"),
    service: Callable[[str], subprocess.CompletedProcess[str]] = _service,
    on_progress: Callable[[str], None] | None = None,
    poll: float = 0.2,
) -> DownOutcome:
    """Stop nginx for up to ``seconds`` (ending early when it runs again); stubborn: with a
    broken config, so that starting it fails."""
    say = on_progress or (lambda _msg: None)
    if seconds <= 0:
        raise ChaosError(f"need seconds > 0, got {seconds=}")
    master = read_pid(pidfile)
    if master is None:
        raise ChaosError(f"nginx is not running (no live pid in {pidfile}): nothing to stop")
    broken = conf_dir / "conf.d" / BROKEN_NAME
    if stubborn and not broken.parent.is_dir():
        raise ChaosError(f"{broken.parent} is not a directory: cannot break the config there")
    start = time.monotonic()
    deadline = start + seconds
    reason: DownReason = "timeout"
    inode: int | None = None
    restored: list[str] = []
    with interrupt_on_sigterm():
        try:
            if stubborn:
                inode = _write_broken(broken)
                say(f"broke the config with {broken}")
            done = service("stop")
            if done.returncode != 0:
                raise ChaosError(f"stopping nginx failed: {(done.stderr or done.stdout)[-300:]}")
            say(f"stopped nginx (pid {master}) for at most {seconds:g}s")
            while (now := time.monotonic()) < deadline:
                if read_pid(pidfile) is not None:
                    reason = "nginx_started"
                    say("nginx runs again: the outage ends")
                    break
                time.sleep(min(poll, deadline - now))
        except KeyboardInterrupt:
            reason = "interrupted"
            say("interrupted: the outage ends")
        finally:
            restored = _restore(broken, inode, pidfile, service, say)
    return DownOutcome(reason=reason, duration=time.monotonic() - start, restored=tuple(restored))


def _write_broken(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    try:
        os.write(fd, BROKEN_TEXT.encode())
        return os.fstat(fd).st_ino
    finally:
        os.close(fd)


def _restore(
    broken: Path,
    inode: int | None,
    pidfile: Path,
    service: Callable[[str], subprocess.CompletedProcess[str]],
    say: Callable[[str], None],
) -> list[str]:
    """Put the machine back: our broken file gone (only ours), nginx running."""
    restored: list[str] = []
    try:
        if inode is not None and broken.lstat().st_ino == inode:
            broken.unlink()
            restored.append("config")
            say(f"removed {broken}")
    except FileNotFoundError:
        pass  # a rollback swapped the whole config back already
    if read_pid(pidfile) is None:
        done = service("start")
        if done.returncode == 0:
            restored.append("started")
            say("started nginx again")
        else:
            say(f"starting nginx failed: {(done.stderr or done.stdout)[-300:]}")
    return restored
