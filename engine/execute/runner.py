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

Against a big inventory a run gets its own minimal one, in its scratch (run_inventory.py).
"""

from __future__ import annotations

import os
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

from ansible_runner.interface import init_runner

from engine.execute.host_outcomes import HostEnd, HostOutcomes
from engine.execute.redaction import CommandRedaction, LiveRedaction, scrub_run_dir
from engine.execute.results import host_stats
from engine.execute.run_inventory import RunInventories
from engine.execute.scratch import ensure_private, scratch_root
from engine.execute.vars_file import cmdline, write_vars_file
from engine.execute.workers import WorkerWatch
from engine.redact import Redactor
from engine.settings import child_environment, environment_additions, is_engine_variable
from engine.types import HostRunStats, RunRequest, RunResult

# An ident becomes a directory name: keep it to one safe path component.
_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
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
# A batch works on all its hosts at once (Ansible's default is 5 forks: a 50-host batch
# would take ten rounds per task); past this, one engine's own CPU would be the limit.
MAX_FORKS = 50
# Settings the engine gives every run.
_ANSIBLE_SETTINGS = {
    "ANSIBLE_NOCOLOR": "1",
    # ansible-runner turns host key checking off unless told otherwise; a remediation
    # engine must not trust whoever answers on a host's address. Ansible's own default is
    # on; an inventory can still say `ansible_host_key_checking=false` for itself.
    "ANSIBLE_HOST_KEY_CHECKING": "True",
    "ANSIBLE_RETRY_FILES_ENABLED": "False",
    # One SSH round trip per task instead of three (mkdir, put, exec): measured on the lab,
    # 50 hosts in 55 s instead of 122 s. A host whose sudoers still has `requiretty` sets
    # `ansible_pipelining=false` in the inventory, which wins over this.
    "ANSIBLE_PIPELINING": "True",
}


class Executor(Protocol):
    """Runs one validated request and reports what happened; never raises for run failures."""

    def run(
        self,
        request: RunRequest,
        *,
        ident: str,
        cancel: threading.Event | None = None,
        on_unreachable: Callable[[HostEnd], None] | None = None,
    ) -> RunResult:
        """Run ``request`` as run ``ident``; setting ``cancel`` stops it early;
        ``on_unreachable`` hears of each host Ansible cannot reach as soon as it knows."""


class AnsibleRunnerExecutor:
    """Runs playbooks locally with ansible-runner, in the calling thread."""

    def __init__(
        self,
        *,
        runs_dir: Path,
        inventory_path: Path,
        envvars: Mapping[str, str] | None = None,
        redactor: Redactor | None = None,
        fact_cache_dir: Path | None = None,
        scratch_dir: Path | None = None,
        run_inventories: RunInventories | None = None,
    ) -> None:
        """``envvars``: extra settings for Ansible (on top of the engine's own);
        ``fact_cache_dir``: facts kept across runs (else each run's own, as runner does);
        ``scratch_dir``: each run's vars file and raw events (default: engine/execute/scratch.py,
        never under the data dir, which must not hold a secret);
        ``run_inventories``: each run's minimal inventory (engine/execute/run_inventory.py)."""
        self._runs_dir = runs_dir
        self._inventory_path = inventory_path
        self._envvars = dict(envvars or {})
        self._redactor = redactor or Redactor()
        self._fact_cache_dir = fact_cache_dir
        self._scratch_dir = scratch_dir or scratch_root()
        self._run_inventories = run_inventories or RunInventories(inventory_path)

    @property
    def scratch_dir(self) -> Path:
        """Where each run's private scratch (``scratch_dir/<ident>``) lives while it runs."""
        return self._scratch_dir

    @property
    def runs_dir(self) -> Path:
        """Where each run's private data dir (``runs_dir/<ident>``) is made."""
        return self._runs_dir

    def run(
        self,
        request: RunRequest,
        *,
        ident: str,
        cancel: threading.Event | None = None,
        on_unreachable: Callable[[HostEnd], None] | None = None,
    ) -> RunResult:
        """Run the request's playbook against its hosts; errors become status "error"."""
        started = time.time()
        private_dir = self._runs_dir / ident
        artifact_dir = private_dir / "artifacts" / ident
        redactor = self._redactor.with_secrets(_secret_values(request))
        stats: dict[str, HostRunStats] = {}
        outcomes: HostOutcomes | None = None

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
                host_errors=_host_errors(outcomes),
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

        # Private to this run and outside the data dir: the vars file (secret vars in clear)
        # and the raw event data, found by the run's ident if the engine dies.
        scratch = self._scratch_dir / ident
        try:
            ensure_private(self._scratch_dir)
            scratch.mkdir(mode=0o700)
        except OSError as exc:
            shutil.rmtree(private_dir, ignore_errors=True)
            return finish("error", error=f"cannot create scratch dir {scratch}: {exc}")
        vars_file = scratch / "vars.yml"
        workers = WorkerWatch(marker=f"@{vars_file}")

        def should_cancel() -> bool:
            workers.poll()
            return cancel is not None and cancel.is_set()

        status, rc, error = "error", None, None  # until runner says otherwise
        try:
            write_vars_file(vars_file, request.extra_vars)
            inventory = self._inventory_for(request, scratch)
            outcomes = HostOutcomes(
                LiveRedaction(redactor, partials=scratch, stdout=artifact_dir / "stdout"),
                on_unreachable=on_unreachable,
            )
            runner = init_runner(
                private_data_dir=str(private_dir),
                ident=ident,
                playbook=request.playbook,
                inventory=str(inventory),
                limit=",".join(request.hosts),
                forks=min(len(request.hosts), MAX_FORKS),
                cmdline=cmdline(vars_file, check=request.check),
                envvars=self._runner_env(),
                settings=dict(_RUNNER_SETTINGS),
                timeout=request.timeout,
                quiet=True,
                # Always pass a callback: without one, runner installs signal handlers.
                cancel_callback=should_cancel,
                event_handler=outcomes,
                status_handler=CommandRedaction(redactor, artifact_dir / "command"),
            )
            runner.config.env = self._child_env(runner.config.env, request.env, scratch)
            runner.run()
            status = str(runner.status)
            rc = runner.rc if isinstance(runner.rc, int) else None
            stats = host_stats(runner.stats)
        except Exception as exc:  # any runner failure is a result, not a traceback
            error = f"{type(exc).__name__}: {exc}"
        finally:
            workers.kill_leftovers()
            shutil.rmtree(scratch, ignore_errors=True)
            scrub_error = scrub_run_dir(private_dir, redactor)
        if scrub_error is not None:
            return finish("error", rc, scrub_error)
        return finish(status, rc, error)

    def _inventory_for(self, request: RunRequest, scratch: Path) -> Path:
        """The run's own minimal inventory when one is faithful and pays, else the full one."""
        try:
            found = self._run_inventories.write(Path(request.playbook), request.hosts, scratch)
        except Exception:  # only an optimisation: the full inventory still works, slower
            found = None
        return found or self._inventory_path

    def _runner_env(self) -> dict[str, str]:
        env = {**_ANSIBLE_SETTINGS, **self._envvars}
        # ansible-playbook lives next to this interpreter (the venv), which may not be on PATH.
        base_path = env.get("PATH") or child_environment().get("PATH") or os.defpath
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), base_path])
        return env

    def _child_env(
        self, runner_env: Mapping[str, str], declared: Sequence[str], scratch: Path
    ) -> dict[str, str]:
        """The allow-listed environment: PATH, HOME, locale, what runner and the engine set
        for Ansible, and the names the action declares; never the engine's own."""
        env = child_environment(declared)
        env |= environment_additions(runner_env)  # runner's callback settings, ours
        env |= {key: runner_env[key] for key in _RUNNER_KEYS if key in runner_env}
        env |= self._runner_env()
        env["AWX_ISOLATED_DATA_DIR"] = str(scratch)  # raw event data, outside the run dir
        if self._fact_cache_dir is not None:
            # What a host is (its service manager, say) is learned by one run and read by
            # the next; outside runs/, so no artifact download carries it.
            self._fact_cache_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
            env["ANSIBLE_CACHE_PLUGIN"] = "jsonfile"
            env["ANSIBLE_CACHE_PLUGIN_CONNECTION"] = str(self._fact_cache_dir)
        return {name: value for name, value in env.items() if not is_engine_variable(name)}


def _check_request(request: RunRequest, ident: str) -> str | None:
    if not _IDENT.fullmatch(ident):
        return f"invalid run ident {ident!r}"
    if not request.hosts:
        # An empty --limit would mean every host in the inventory.
        return "no hosts to run against"
    if not Path(request.playbook).is_absolute():
        return f"playbook path must be absolute: {request.playbook!r}"
    return None


def _host_errors(outcomes: HostOutcomes | None) -> dict[str, str]:
    """Each host's first unreachable or failed task, as the record shows it."""
    ends = outcomes.ends if outcomes is not None else {}
    return {host: end.describe() for host, end in ends.items()}


def _secret_values(request: RunRequest) -> list[str]:
    return [request.extra_vars[k] for k in request.secret_vars if k in request.extra_vars]
