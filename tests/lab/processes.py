"""Processes the lab starts: detached (they outlive ``lab up``), recorded by pid and start
time, and stopped only when that very process still holds the pid."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from tests.lab.errors import LabError


@dataclass(frozen=True)
class Tracked:
    """A process the lab started: its pid, its start time (which tells pid reuse apart) and
    a marker its command line holds (a lab file's path: a forged record names no other
    process)."""

    pid: int
    started: float
    marker: str

    @classmethod
    def of(cls, pid: int, marker: str) -> Tracked:
        """Record a process that runs now."""
        return cls(pid, psutil.Process(pid).create_time(), marker)

    def alive(self) -> bool:
        """True while this very process runs (a zombie, or a new owner of the pid, is not it)."""
        try:
            proc = psutil.Process(self.pid)
            if proc.create_time() != self.started or proc.status() == psutil.STATUS_ZOMBIE:
                return False
            return self.marker in _cmdline(proc)
        except psutil.Error:
            return False

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM, then SIGKILL after ``timeout``; waits (bounded) until it is gone."""
        for sig, grace in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            if not self.alive():
                return
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + grace
            while self.alive() and time.monotonic() < deadline:
                _reap(self.pid)
                time.sleep(0.02)
        if self.alive():
            raise LabError(f"process {self.pid} survives SIGKILL")


def _reap(pid: int) -> None:
    # Our own child (the fixture's case) stays a zombie until waited for.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def start_detached(argv: list[str], log: Path) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session with output to ``log``: it survives the caller."""
    with log.open("ab") as out:
        return subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd="/",
            start_new_session=True,
        )


def tail(log: Path, chars: int = 1500) -> str:
    """The end of a log, for an error message."""
    try:
        return log.read_text(errors="replace")[-chars:].strip()
    except OSError:
        return "(no log)"


def _cmdline(proc: psutil.Process, tries: int = 5) -> list[str]:
    """The command line, read again while it is empty: a process in the middle of execve
    (the holder's ``unshare`` becoming python) shows none for a moment, and reading that
    as "not our process" once failed a lab's start with nothing in the holder's log."""
    for _ in range(tries - 1):
        cmdline = proc.cmdline()
        if cmdline:
            return cmdline
        time.sleep(0.02)
    return proc.cmdline()
