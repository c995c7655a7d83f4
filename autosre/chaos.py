"""Chaos: a CPU burner that plays "a runaway nginx worker that a restart cures".

(Memory and disk fillers are in autosre/chaos_fill.py, nginx-down in autosre/chaos_nginx.py;
they share the pid watch, the SIGTERM handling and the process-group kill below.)

``burn_cpu`` loads every core (stress-ng when installed, Python spinners otherwise)
and watches nginx's master pid: a restart (pid gone or changed) ends the burn at
once, unless it is stubborn. The burn is always bounded in time, and every burner
process is killed before it returns, whatever happened.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Literal

from engine.errors import ChaosError

# The Python fallback burner: spin until the backstop, whatever happens to the parent.
_SPIN = "import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass\n"

BurnReason = Literal["nginx_restarted", "timeout", "interrupted"]


@dataclass(frozen=True, slots=True)
class BurnOutcome:
    """Why the burn ended and how long it ran, in seconds."""

    reason: BurnReason
    duration: float


def read_pid(pidfile: Path) -> int | None:
    """The pid in ``pidfile`` if that process is alive, else None."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if pid_alive(pid) else None


def pid_alive(pid: int) -> bool:
    """True when ``pid`` runs; a zombie counts as gone (some PID 1s reap late)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by someone else
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def burn_cpu(
    *,
    seconds: float,
    stubborn: bool = False,
    pidfile: Path = Path("/run/nginx.pid"),
    workers: int | None = None,
    on_progress: Callable[[str], None] | None = None,
    poll: float = 0.2,
) -> BurnOutcome:
    """Load every core for up to ``seconds``; a non-stubborn burn ends when nginx restarts."""
    say = on_progress or (lambda _msg: None)
    if seconds <= 0 or (workers is not None and workers < 1):
        raise ChaosError(f"need seconds > 0 and workers >= 1, got {seconds=} {workers=}")
    count = workers or os.cpu_count() or 1
    master = read_pid(pidfile)
    if master is None and not stubborn:
        raise ChaosError(f"nginx is not running (no live pid in {pidfile}): nothing to restart")
    start = time.monotonic()
    deadline = start + seconds
    reason: BurnReason = "timeout"
    with interrupt_on_sigterm():
        try:
            with _burners(count, seconds) as kind:
                say(f"burning {count} cpu(s) with {kind} for {seconds:g}s (nginx pid {master})")
                while (now := time.monotonic()) < deadline:
                    if master is not None and restarted(pidfile, master):
                        if not stubborn:
                            reason = "nginx_restarted"
                            say(f"nginx master pid {master} replaced: stopping the burn")
                            break
                        say(f"nginx master pid {master} replaced: the stubborn burn goes on")
                        master = read_pid(pidfile)
                    time.sleep(min(poll, deadline - now))
        except KeyboardInterrupt:
            reason = "interrupted"
            say("interrupted: the burn is stopped")
    return BurnOutcome(reason=reason, duration=time.monotonic() - start)


def restarted(pidfile: Path, master: int) -> bool:
    """True once the master ``master`` is gone or the pidfile names another process."""
    if not pid_alive(master):
        return True
    try:
        return int(pidfile.read_text().strip()) != master
    except (OSError, ValueError):
        return False  # pidfile briefly missing mid-restart: the pid check decides


@contextlib.contextmanager
def interrupt_on_sigterm() -> Iterator[None]:
    """Within the block, SIGTERM raises KeyboardInterrupt (main thread only)."""

    # SIGTERM becomes KeyboardInterrupt so one path cleans up; only the main thread
    # may install handlers, elsewhere the caller owns signals.
    def handler(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextlib.contextmanager
def _burners(count: int, seconds: float) -> Iterator[str]:
    # Each burner also stops on its own a little after `seconds`, in case this
    # process dies without cleaning up.
    backstop = math.ceil(seconds) + 1
    stress_ng = shutil.which("stress-ng")
    if stress_ng:
        proc = subprocess.Popen(
            [stress_ng, "--cpu", str(count), "--timeout", f"{backstop}s", "--quiet"],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,  # its own process group: one killpg reaches its workers
        )
        try:
            yield "stress-ng"
        finally:
            kill_group(proc)
        return
    # No stress-ng: one Python spinner per core, all in one new process group.
    # (multiprocessing would leave its resource tracker behind, or fork a threaded engine.)
    spinners: list[subprocess.Popen[bytes]] = []
    try:
        for _ in range(count):
            spinners.append(
                subprocess.Popen(
                    [sys.executable, "-c", _SPIN.format(seconds=backstop)],
                    stdin=subprocess.DEVNULL,
                    process_group=spinners[0].pid if spinners else 0,
                )
            )
        yield "python"
    finally:
        if spinners:
            kill_group(spinners[0])
        for spinner in spinners:
            spinner.kill()
            spinner.wait(timeout=5)


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    """End a burner's whole process group: SIGTERM, then SIGKILL for whatever lingers."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=1.0)
    # The leader may be gone while workers of its group are not (stress-ng's).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=5)
