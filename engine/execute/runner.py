"""Execute: run one whitelisted playbook with ansible-runner, the only module that does.

Each run gets its own private data dir ``runs_dir/<ident>/`` in ansible-runner's
layout; artifacts (``command``, ``job_events/``, ``stdout``, ``status``, ``rc``)
land in ``runs_dir/<ident>/artifacts/<ident>/``. The run dir never holds a secret,
even while the run is live:

- Ansible gets an allow-listed environment (``_child_env``), never the engine's own.
- Extra vars reach Ansible through a 0600 YAML file outside the run dir, every value
  tagged ``!unsafe`` so that Ansible never templates it.
- Each event is redacted before ansible-runner writes it; ``stdout`` is written here
  from the redacted events. The callback's raw ``*-partial.json`` event data goes to
  a private dir outside the run dir, and is merged into the event here.
- After the run, every file is scrubbed again (a second line of defence).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import psutil
import yaml
from ansible_runner.interface import init_runner

from engine.redact import REDACTED, Redactor
from engine.settings import child_environment, environment_additions, is_engine_variable
from engine.types import HostRunStats, RunRequest, RunResult

__all__ = ["REDACTED", "AnsibleRunnerExecutor", "Executor", "read_events", "scrub_dir"]

# An ident becomes a directory name: keep it to one safe path component.
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_EVENT_UUID = re.compile(r"[0-9a-fA-F-]{1,64}")
# ansible-runner's recap keys -> HostRunStats fields ("dark" means unreachable).
_STAT_FIELDS = {"dark": "unreachable"} | {
    key: key for key in ("ok", "changed", "failures", "skipped", "rescued", "ignored")
}
_RUNNER_SETTINGS = {
    # ansible-runner checks cancel and timeout once per pexpect wait (5 s by default);
    # a short wait makes both take effect promptly.
    "pexpect_timeout": 0.2,
    # stdout is written by _LiveRedaction from redacted events, never raw.
    "suppress_output_file": True,
}
# Keys ansible-runner's event stream needs, kept even when the engine's own
# environment happens to hold the same value.
_RUNNER_KEYS = (
    "ANSIBLE_CALLBACK_PLUGINS",
    "ANSIBLE_STDOUT_CALLBACK",
    "ANSIBLE_CACHE_PLUGIN",
    "ANSIBLE_CACHE_PLUGIN_CONNECTION",
    "RUNNER_OMIT_EVENTS",
    "RUNNER_ONLY_FAILED_EVENTS",
)
# Settings the engine gives every run.
_ANSIBLE_SETTINGS = {
    "ANSIBLE_NOCOLOR": "1",
    "ANSIBLE_HOST_KEY_CHECKING": "False",
    "ANSIBLE_RETRY_FILES_ENABLED": "False",
}


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
        redactor: Redactor | None = None,
        action_env: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        """``envvars``: extra settings for Ansible; ``action_env``: per action, the names
        passed through from the engine's environment (the policy's ``env:``)."""
        self._runs_dir = runs_dir
        self._inventory_path = inventory_path
        self._envvars = dict(envvars or {})
        self._redactor = redactor or Redactor()
        self._action_env = {name: tuple(names) for name, names in (action_env or {}).items()}

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
        redactor = self._redactor.with_secrets(_secret_values(request))
        stats: dict[str, HostRunStats] = {}

        def finish(status: str, rc: int | None = None, error: str | None = None) -> RunResult:
            return RunResult(
                ident=ident,
                status=status,
                rc=rc,
                artifact_dir=str(artifact_dir),
                started_at=started,
                ended_at=time.time(),
                stats=stats,
                error=None if error is None else redactor.text(error),
            )

        problem = _check_request(request, ident)
        if problem is not None:
            return finish("error", error=problem)
        if cancel is not None and cancel.is_set():
            return finish("canceled", error="canceled before start")
        try:
            private_dir.mkdir(parents=True, exist_ok=False, mode=0o700)
        except OSError as exc:
            return finish("error", error=f"cannot create run dir {private_dir}: {exc}")

        # Private to this run and outside the run dir: the vars file and the raw event data.
        scratch = Path(tempfile.mkdtemp(prefix="autosre-run-"))
        vars_file = scratch / "vars.yml"
        workers = _WorkerWatch(marker=f"@{vars_file}")

        def should_cancel() -> bool:
            workers.poll()
            return cancel is not None and cancel.is_set()

        status, rc, error = "error", None, None  # until runner says otherwise
        try:
            _write_vars_file(vars_file, request.extra_vars)
            runner = init_runner(
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
                event_handler=_LiveRedaction(
                    redactor, partials=scratch, stdout=artifact_dir / "stdout"
                ),
                status_handler=_CommandRedaction(redactor, artifact_dir / "command"),
            )
            runner.config.env = self._child_env(runner.config.env, request.action, scratch)
            runner.run()
            status = str(runner.status)
            rc = runner.rc if isinstance(runner.rc, int) else None
            stats = _host_stats(runner.stats)
        except Exception as exc:  # any runner failure is a result, not a traceback
            error = f"{type(exc).__name__}: {exc}"
        finally:
            workers.kill_leftovers()
            shutil.rmtree(scratch, ignore_errors=True)
            scrub_error = _scrub_run_dir(private_dir, redactor)
        if scrub_error is not None:
            return finish("error", rc, scrub_error)
        return finish(status, rc, error)

    def _runner_env(self) -> dict[str, str]:
        env = {**_ANSIBLE_SETTINGS, **self._envvars}
        # ansible-playbook lives next to this interpreter (the venv), which may not be on PATH.
        base_path = env.get("PATH") or child_environment().get("PATH") or os.defpath
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), base_path])
        return env

    def _child_env(
        self, runner_env: Mapping[str, str], action: str, scratch: Path
    ) -> dict[str, str]:
        """The allow-listed environment: PATH, HOME, locale, what runner and the engine set
        for Ansible, and the names the action declares; never the engine's own."""
        env = child_environment(self._action_env.get(action, ()))
        env |= environment_additions(runner_env)  # runner's callback settings, ours
        env |= {key: runner_env[key] for key in _RUNNER_KEYS if key in runner_env}
        env |= self._runner_env()
        env["AWX_ISOLATED_DATA_DIR"] = str(scratch)  # raw event data, outside the run dir
        return {name: value for name, value in env.items() if not is_engine_variable(name)}


class _CommandRedaction:
    """ansible-runner's status handler: redacts the ``command`` artifact (which holds the
    child's environment) as soon as runner has written it, before Ansible starts."""

    def __init__(self, redactor: Redactor, command: Path) -> None:
        self._redactor = redactor
        self._command = command

    def __call__(self, status: Mapping[str, Any], **_: Any) -> None:
        """On "running" (the file is written, the child not yet spawned), redact the file."""
        if status.get("status") == "running":
            with contextlib.suppress(OSError):  # the scrub after the run tries again
                _scrub_file(self._command, self._redactor)


class _LiveRedaction:
    """ansible-runner's event handler: redacts each event before runner writes it.

    The callback plugin leaves each event's data in ``<partials>/job_events`` (where
    ``AWX_ISOLATED_DATA_DIR`` points); it is merged here, as runner would have done,
    and removed. The redacted ``stdout`` of each event is appended to the artifact.
    """

    def __init__(self, redactor: Redactor, *, partials: Path, stdout: Path) -> None:
        self._redactor = redactor
        self._partials = partials / "job_events"
        self._stdout = stdout

    def __call__(self, event: dict[str, Any]) -> bool:
        """Redact ``event`` in place and append its stdout; True: runner writes it."""
        self._merge_partial(event)
        redacted = self._redactor.value(event)
        event.clear()
        event.update(redacted)
        text = event.get("stdout")
        if isinstance(text, str) and text:
            with (
                contextlib.suppress(OSError),  # the events still hold the output
                self._stdout.open("a", encoding="utf-8") as handle,
            ):
                handle.write(text + "\n")
        return True

    def _merge_partial(self, event: dict[str, Any]) -> None:
        uuid = event.get("uuid")
        if not isinstance(uuid, str) or not _EVENT_UUID.fullmatch(uuid):
            return
        partial = self._partials / f"{uuid}-partial.json"
        try:
            data = json.loads(partial.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # verbose output lines have no event data
        partial.unlink(missing_ok=True)
        if isinstance(data, dict):
            event.update(data)


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


class _Unsafe(str):
    """An extra var's value: data that Ansible must never template."""

    __slots__ = ()


class _VarsDumper(yaml.SafeDumper):
    """Writes every ``_Unsafe`` value tagged ``!unsafe``, double-quoted (any character)."""


def _represent_unsafe(dumper: yaml.SafeDumper, value: _Unsafe) -> yaml.ScalarNode:
    return dumper.represent_scalar("!unsafe", str(value), style='"')


_VarsDumper.add_representer(_Unsafe, _represent_unsafe)


def vars_yaml(extra_vars: Mapping[str, str]) -> str:
    """Extra vars as the YAML Ansible reads with ``-e @file``: every value ``!unsafe``."""
    data = {name: _Unsafe(value) for name, value in extra_vars.items()}
    # ASCII only (the rest escaped) and no line folding: the value is read back exactly.
    return yaml.dump(data, Dumper=_VarsDumper, allow_unicode=False, width=2**31)


def _write_vars_file(path: Path, extra_vars: Mapping[str, str]) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(vars_yaml(extra_vars))


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


def _scrub_run_dir(private_dir: Path, redactor: Redactor) -> str | None:
    try:
        (private_dir / "env" / "extravars").unlink(missing_ok=True)
        scrub_dir(private_dir, redactor)
    except OSError as exc:
        return f"could not scrub secrets from {private_dir}: {exc}"
    return None


def scrub_dir(root: Path, redactor: Redactor) -> None:
    """Redact every file under root, and remove runner's raw ``*-partial.json`` event data."""
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        if path.name.endswith(("-partial.json", "-partial.json.tmp")):
            path.unlink()
        else:
            _scrub_file(path, redactor)


def _scrub_file(path: Path, redactor: Redactor) -> None:
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict | list):
        clean = redactor.value(data)
        new = json.dumps(clean).encode() if clean != data else raw
    else:
        text = raw.decode("utf-8", "surrogateescape")
        new = redactor.text(text).encode("utf-8", "surrogateescape")
    if new != raw:
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
