"""Ansible's worker processes of one run, so that none outlives a timeout or a cancel."""

from __future__ import annotations

import os
import signal

import psutil


class WorkerWatch:
    """Remembers the run's Ansible worker processes so none outlives a timeout or cancel.

    ansible-runner ends a run by SIGKILLing ansible-playbook's process group, but
    Ansible's workers call setsid(): they and the module they run (a restart, say)
    would go on as orphans. Workers are the direct children of the ansible-playbook
    process, found by the run's unique vars-file path in its command line.
    """

    def __init__(self, *, marker: str) -> None:
        self._marker = marker
        self._main: psutil.Process | None = None
        self._workers: dict[int, psutil.Process] = {}

    def poll(self) -> None:
        """Note the workers alive now (called by runner every poll interval)."""
        if self._main is None:
            for child in psutil.Process().children():
                try:
                    if self._marker in child.cmdline():
                        self._main = child
                        break
                except psutil.Error:
                    continue
        if self._main is not None:
            try:
                for worker in self._main.children():
                    self._workers.setdefault(worker.pid, worker)
            except psutil.Error:
                pass  # ansible-playbook has exited

    def kill_leftovers(self) -> None:
        """SIGKILL the process group of every noted worker that still runs."""
        for worker in self._workers.values():
            try:
                if not worker.is_running():  # also false when the pid was reused
                    continue
                if os.getpgid(worker.pid) == worker.pid:
                    os.killpg(worker.pid, signal.SIGKILL)
                else:
                    worker.kill()
            except (psutil.Error, ProcessLookupError):
                continue
