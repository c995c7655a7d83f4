"""Execute: run one whitelisted playbook with ansible-runner, the only module that does.

Each run gets its own private data dir ``runs_dir/<ident>/`` in ansible-runner's
layout; artifacts (``command``, ``job_events/``, ``stdout``, ``status``, ``rc``)
land in ``runs_dir/<ident>/artifacts/<ident>/``. Extra vars reach Ansible through a
0600 file outside that dir, and secret values are scrubbed from every artifact
after the run, so the UI can show artifacts as they are.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Protocol

import ansible_runner
import psutil

from engine.types import HostRunStats, RunRequest, RunResult

REDACTED = "********"

# An ident becomes a directory name: keep it to one safe path component.
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
# Environment variables that look like credentials: ansible-runner copies the whole
# process environment into the `command` artifact, so their values are scrubbed too.
_SECRET_NAME = re.compile(r"API_?KEY|TOKEN|SECRET|PASSW|CREDENTIAL|PRIVATE_?KEY", re.IGNORECASE)
# ansible-runner's recap keys -> HostRunStats fields ("dark" means unreachable).
_STAT_FIELDS = {"dark": "unreachable"} | {
    key: key for key in ("ok", "changed", "failures", "skipped", "rescued", "ignored")
}
# ansible-runner checks cancel and timeout once per pexpect wait (5 s by default);
# a short wait makes both take effect promptly.
_RUNNER_SETTINGS = {"pexpect_timeout": 0.2}


class Executor(Protocol):
    """Runs one validated request and reports what happened; never raises for run failures."""

    def run(
        self, request: RunRequest, *, ident: str, cancel: threading.Event | None = None
    ) -> RunResult:
        """Run ``request`` as run ``ident``; setting ``cancel`` stops it early."""


class AnsibleRunnerExecutor:
    """Runs playbooks locally with ansible-runner, in the calling thread."""

    def __init__(
        self,
        *,
        runs_dir: Path,
        inventory_path: Path,
        envvars: Mapping[str, str] | None = None,
    ) -> None:
        self._runs_dir = runs_dir
        self._inventory_path = inventory_path
        self._envvars = dict(envvars or {})

    @property
    def runs_dir(self) -> Path:
        """Where each run's private data dir (``runs_dir/<ident>``) is made."""
        return self._runs_dir

    def run(
        self, request: RunRequest, *, ident: str, cancel: threading.Event | None = None
    ) -> RunResult:
        """Run the request's playbook against its hosts; errors become status "error"."""
        started = time.time()
        private_dir = self._runs_dir / ident
        artifact_dir = private_dir / "artifacts" / ident

        def finish(status: str, rc: int | None = None, error: str | None = None) -> RunResult:
            return RunResult(
                ident=ident,
                status=status,
                rc=rc,
                artifact_dir=str(artifact_dir),
                started_at=started,
                ended_at=time.time(),
                stats=stats,
                error=None if error is None else _replace_all(error, secrets),
            )

        secrets = _secret_values(request)
        stats: dict[str, HostRunStats] = {}
        problem = _check_request(request, ident)
        if problem is not None:
            return finish("error", error=problem)
        if cancel is not None and cancel.is_set():
            return finish("canceled", error="canceled before start")
        try:
            private_dir.mkdir(parents=True, exist_ok=False, mode=0o700)
        except OSError as exc:
            return finish("error", error=f"cannot create run dir {private_dir}: {exc}")

        vars_file = _write_vars_file(request.extra_vars)
        workers = _WorkerWatch(marker=f"@{vars_file}")

        def should_cancel() -> bool:
            workers.poll()
            return cancel is not None and cancel.is_set()

        status, rc, error = "error", None, None  # until runner says otherwise
        try:
            runner = ansible_runner.run(
                private_data_dir=str(private_dir),
                ident=ident,
                playbook=request.playbook,
                inventory=str(self._inventory_path),
                limit=",".join(request.hosts),
                cmdline=_cmdline(vars_file, check=request.check),
                envvars=self._runner_env(),
                settings=dict(_RUNNER_SETTINGS),
                timeout=request.timeout,
                quiet=True,
                # Always pass a callback: without one, runner installs signal handlers.
                cancel_callback=should_cancel,
            )
            status = str(runner.status)
            rc = runner.rc if isinstance(runner.rc, int) else None
            stats = _host_stats(runner.stats)
        except Exception as exc:  # any runner failure is a result, not a traceback
            error = f"{type(exc).__name__}: {exc}"
        finally:
            workers.kill_leftovers()
            vars_file.unlink(missing_ok=True)
            scrub_error = _scrub_run_dir(private_dir, secrets)
        if scrub_error is not None:
            return finish("error", rc, scrub_error)
        return finish(status, rc, error)

    def _runner_env(self) -> dict[str, str]:
        env = {
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_HOST_KEY_CHECKING": "False",
            "ANSIBLE_RETRY_FILES_ENABLED": "False",
            **self._envvars,
        }
        # ansible-playbook lives next to this interpreter (the venv), which may not be on PATH.
        base_path = env.get("PATH") or os.environ.get("PATH", os.defpath)
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), base_path])
        return env


class _WorkerWatch:
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


def _check_request(request: RunRequest, ident: str) -> str | None:
    if not _IDENT.fullmatch(ident):
        return f"invalid run ident {ident!r}"
    if not request.hosts:
        # An empty --limit would mean every host in the inventory.
        return "no hosts to run against"
    if not Path(request.playbook).is_absolute():
        return f"playbook path must be absolute: {request.playbook!r}"
    return None


def _write_vars_file(extra_vars: Mapping[str, str]) -> Path:
    # mkstemp creates the file 0600, in the system temp dir: outside the run dir.
    fd, name = tempfile.mkstemp(prefix="autosre-vars-", suffix=".json")
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        json.dump(dict(extra_vars), handle)
    return Path(name)


def _cmdline(vars_file: Path, *, check: bool) -> str:
    return shlex.join(["-e", f"@{vars_file}", *(["--check"] if check else [])])


def _host_stats(raw: Mapping[str, Mapping[str, int]] | None) -> dict[str, HostRunStats]:
    if not raw:
        return {}
    per_host: dict[str, dict[str, int]] = {}
    for key, field in _STAT_FIELDS.items():
        for host, count in (raw.get(key) or {}).items():
            per_host.setdefault(host, {})[field] = int(count)
    for host in raw.get("processed") or {}:
        per_host.setdefault(host, {})
    return {host: HostRunStats(**counts) for host, counts in per_host.items()}


def _secret_values(request: RunRequest) -> list[str]:
    return [request.extra_vars[k] for k in request.secret_vars if k in request.extra_vars]


def _replace_all(text: str, secrets: Iterable[str]) -> str:
    # Longest first, so a secret containing another is replaced whole.
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, REDACTED)
    return text


def _scrub_value(value: Any, secrets: list[str]) -> Any:
    if isinstance(value, str):
        return _replace_all(value, secrets)
    if isinstance(value, list):
        return [_scrub_value(item, secrets) for item in value]
    if isinstance(value, dict):
        scrubbed: dict[str, Any] = {}
        for key, item in value.items():
            if key == "extra_vars" and isinstance(item, dict):
                scrubbed[key] = dict.fromkeys(item, REDACTED)
            elif _SECRET_NAME.search(str(key)) and isinstance(item, str) and item:
                scrubbed[key] = REDACTED
            else:
                scrubbed[key] = _scrub_value(item, secrets)
        return scrubbed
    return value


def _scrub_run_dir(private_dir: Path, secrets: list[str]) -> str | None:
    try:
        (private_dir / "env" / "extravars").unlink(missing_ok=True)
        scrub_dir(private_dir, secrets)
    except OSError as exc:
        return f"could not scrub secrets from {private_dir}: {exc}"
    return None


def scrub_dir(root: Path, secrets: Iterable[str]) -> None:
    """Remove secret values (and extra_vars / credential-like fields) from every file under root."""
    secret_list = [s for s in secrets if s]
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        raw = path.read_bytes()
        try:
            data = json.loads(raw)
        except ValueError:
            data = None
        if isinstance(data, dict | list):
            new = json.dumps(_scrub_value(data, secret_list)).encode()
            changed = new != json.dumps(data).encode()
        else:
            new = _replace_all(raw.decode("utf-8", "surrogateescape"), secret_list).encode(
                "utf-8", "surrogateescape"
            )
            changed = new != raw
        if changed:
            path.write_bytes(new)


def read_events(artifact_dir: Path) -> list[dict[str, Any]]:
    """Load a run's job events, ordered by their counter."""
    events: list[dict[str, Any]] = []
    for path in (artifact_dir / "job_events").glob("*.json"):
        if path.name.endswith("-partial.json"):
            continue
        try:
            event = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # a half-written event of a run still in progress
        if isinstance(event, dict):
            events.append(event)
    return sorted(events, key=lambda e: int(e.get("counter", 0)))
