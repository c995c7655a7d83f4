"""Staged runs: a playbook's read-only preflight (runner start, inventory, connection,
``nginx -t``, the service manager) runs while the engine still decides, then holds at the
playbook's release point until the verdict releases it or discards it.

The release point is a pair of tasks in the playbook (see ``restart_nginx.yml``): they wait
on the controller for ``autosre_release_file`` and end the host's play unless it says
"release". Nothing mutating comes before them, so a run that is discarded, or whose engine
dies (no answer before ``autosre_release_timeout``: the wait fails), has changed nothing.
"""

from __future__ import annotations

import shutil
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import yaml

from engine.errors import RefusedError
from engine.execute.runner import Executor
from engine.types import RunRequest, RunResult

RELEASE = "release"
DISCARD = "discard"
UNANSWERED = "unanswered"  # the run ended before any verdict reached it


class StagedRun:
    """One run started ahead of its verdict; ``release()`` or ``discard()`` answers it once."""

    def __init__(
        self,
        executor: Executor,
        request: RunRequest,
        *,
        ident: str,
        hold: float,
        on_end: Callable[[StagedRun, RunResult], None] | None = None,
        cancel: threading.Event | None = None,
    ) -> None:
        """Start the run now, in a thread of its own; it waits at most ``hold`` seconds, and
        ``on_end`` hears its result. RefusedError when the playbook has no release point."""
        if not has_release_point(Path(request.playbook)):
            raise RefusedError(
                f"{request.playbook}: no release point (a meta: end_host task on "
                "autosre_release_file), so it cannot be staged"
            )
        self.ident = ident
        self._dir = Path(tempfile.mkdtemp(prefix="autosre-stage-"))  # 0700, the engine's only
        self._verdict_file = self._dir / "verdict"
        self._answered: str | None = None
        self._lock = threading.Lock()
        self._result: RunResult | None = None
        self._ended = False
        self._on_end = on_end
        self._cancel = cancel
        staged_vars = {
            **request.extra_vars,
            "autosre_release_file": str(self._verdict_file),
            "autosre_release_timeout": str(max(1, round(hold))),
        }
        self._request = replace(request, extra_vars=staged_vars)
        self._executor = executor
        self._thread = threading.Thread(target=self._run, name=f"staged-{ident}", daemon=True)
        self._thread.start()

    @property
    def request(self) -> RunRequest:
        """What the run runs (with the release point's own variables)."""
        return self._request

    @property
    def answer(self) -> str | None:
        """ "release", "discard", "unanswered" (it ended first), or None while it waits."""
        return self._answered

    def release(self) -> bool:
        """Let the run go past its release point; False when it was already answered or
        has ended (then it did not act, and the caller starts a run of its own)."""
        return self._answer(RELEASE)

    def discard(self) -> bool:
        """End the run at its release point, having changed nothing; False when answered."""
        return self._answer(DISCARD)

    def result(self, timeout: float | None = None) -> RunResult | None:
        """The run's result once it has ended, else None after ``timeout`` seconds."""
        self._thread.join(timeout)
        return self._result

    def _answer(self, verdict: str) -> bool:
        with self._lock:
            if self._answered is not None or self._ended:
                return False
            self._answered = verdict
            partial = self._dir / ".verdict"
            try:
                partial.write_text(verdict, encoding="utf-8")
                partial.replace(self._verdict_file)  # the waiting task sees it whole
            except OSError:
                return False  # the run cannot hear it; it ends at its hold's timeout
            return True

    def _run(self) -> None:
        started = time.time()
        try:
            result = self._executor.run(self._request, ident=self.ident, cancel=self._cancel)
        except Exception as exc:  # an executor bug must still end the run (and its record)
            result = RunResult(self.ident, "error", None, "", started, time.time(), {}, str(exc))
        finally:
            with self._lock:  # from here no answer can reach the run: it is too late
                self._ended = True
                if self._answered is None:
                    self._answered = UNANSWERED
            shutil.rmtree(self._dir, ignore_errors=True)
        self._result = result
        if self._on_end is not None:
            self._on_end(self, result)


def has_release_point(playbook: Path) -> bool:
    """True when a play of the playbook ends the host's run on the engine's verdict."""
    try:
        plays = yaml.safe_load(playbook.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return False
    for play in plays if isinstance(plays, list) else []:
        tasks = play.get("tasks") if isinstance(play, dict) else None
        for task in tasks if isinstance(tasks, list) else []:
            if not isinstance(task, dict):
                continue
            meta = task.get("ansible.builtin.meta", task.get("meta"))
            if meta == "end_host" and "autosre_release_file" in str(task.get("when", "")):
                return True
    return False
