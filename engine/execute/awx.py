"""Execute through AWX / Automation Controller instead of a local ansible-runner.

One whitelisted action is one job template (``actions.<name>.awx_job_template``),
launched with the request's hosts as ``limit`` and its validated ``extra_vars``; the job is
followed by polling, cancelled at the action's timeout or on the engine's ``cancel``, and
stored like a local run (engine/execute/awx_artifacts.py). A template that would ignore
the limit or a var (it does not prompt for them on launch) would run on its own
inventory: its job is cancelled at once and the run fails.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engine.execute.awx_artifacts import exit_code, write_text
from engine.execute.awx_client import AwxClient, AwxError
from engine.execute.awx_job import FINISHED, AwxJob
from engine.execute.host_outcomes import HostEnd
from engine.redact import Redactor
from engine.types import RunRequest, RunResult

log = logging.getLogger(__name__)

_IDENT = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
POLL_INTERVAL = 1.0
CANCEL_GRACE = 15.0  # how long a cancelled job may take to stop before we stop waiting
# A staged run waits for a file on the engine's own host: a controller never sees it.
_STAGED_VAR = "autosre_release_file"

TemplateRef = int | str


class AwxExecutor:
    """Runs each action's job template on the controller, in the calling thread."""

    def __init__(
        self,
        client: AwxClient,
        *,
        templates: Mapping[str, TemplateRef],
        runs_dir: Path,
        redactor: Redactor | None = None,
        poll_interval: float = POLL_INTERVAL,
        cancel_grace: float = CANCEL_GRACE,
    ) -> None:
        """``templates``: each action's job template, by id or by name."""
        self._client = client
        self._templates = dict(templates)
        self._runs_dir = runs_dir
        self._redactor = (redactor or Redactor()).with_secrets([client.token])
        self._poll = poll_interval
        self._grace = cancel_grace

    @property
    def runs_dir(self) -> Path:
        """Where each run's directory (``runs_dir/<ident>``) is made."""
        return self._runs_dir

    def run(
        self,
        request: RunRequest,
        *,
        ident: str,
        cancel: threading.Event | None = None,
        on_unreachable: Callable[[HostEnd], None] | None = None,
    ) -> RunResult:
        """Launch, follow and store the action's job; every failure is a result, not a raise."""
        started = time.time()
        artifact_dir = self._runs_dir / ident / "artifacts" / ident
        secrets = [request.extra_vars[k] for k in request.secret_vars if k in request.extra_vars]
        redactor = self._redactor.with_secrets(secrets)
        job = AwxJob(self._client, redactor, ident, artifact_dir, on_unreachable)

        def finish(status: str, error: str | None) -> RunResult:
            return _stored_result(job, status, error, started)

        problem = self._refusal(request, ident)
        if problem is not None:
            return finish("error", problem)
        if cancel is not None and cancel.is_set():
            return finish("canceled", "canceled before start")
        try:
            # The run's own dir is private, as a local run's; an ident already used is refused.
            (self._runs_dir / ident).mkdir(parents=True, mode=0o700)
            artifact_dir.mkdir(parents=True, mode=0o700)
        except OSError as exc:
            return finish("error", f"cannot create run dir {artifact_dir}: {exc}")
        try:
            status, error = self._carry_out(request, job, cancel)
        except Exception as exc:  # a bug or a surprise must still end as a result
            log.exception("AWX run %s failed unexpectedly", ident)
            if job.id:
                job.cancel()  # nobody follows the job any more
            status, error = "error", f"{type(exc).__name__}: {exc}"
        return finish(status, error)

    def resume(self, ident: str, started_at: float, wait: float) -> RunResult | None:
        """After a crash: the job a run launched went on without the engine. Follow it (at
        most ``wait`` seconds, then cancel it) and return its real result; None when the run
        never got as far as a job."""
        artifact_dir = self._runs_dir / ident / "artifacts" / ident
        try:
            record = json.loads((artifact_dir / "awx_job").read_text(encoding="utf-8"))
            job_id = int(record["job"])
        except (OSError, ValueError, KeyError, TypeError):
            return None
        job = AwxJob(self._client, self._redactor, ident, artifact_dir, None)
        job.id = job_id
        status, error = job.follow(wait, None, self._poll, self._grace)
        if not job.lost:
            job.collect(finished=status in FINISHED or status == "timeout")
        went_on = f"AWX job {job_id} went on while the engine was down"
        if status == "timeout":
            status, error = "canceled", f"{went_on}; still running {wait:.1f}s after: canceled"
        return _stored_result(job, status, error or f"{went_on} and ended {status}", started_at)

    def _refusal(self, request: RunRequest, ident: str) -> str | None:
        if not _IDENT.fullmatch(ident):
            return f"invalid run ident {ident!r}"
        if not request.hosts:
            return "no hosts to run against"  # an empty limit would mean the whole inventory
        if request.action not in self._templates:
            return f"action {request.action!r} has no awx_job_template: not launched"
        if _STAGED_VAR in request.extra_vars:
            return "a staged run waits on the engine's host and cannot run through AWX"
        return None

    def _carry_out(
        self, request: RunRequest, job: AwxJob, cancel: threading.Event | None
    ) -> tuple[str, str | None]:
        ref = self._templates[request.action]
        try:
            template = self._client.template_id(ref)
            answer = self._client.launch(template, _launch_body(request))
        except AwxError as exc:
            return "error", f"job template {ref!r} not launched: {exc}"
        job_id = answer.get("job", answer.get("id"))
        if not isinstance(job_id, int) or isinstance(job_id, bool):
            return "error", f"malformed launch answer for job template {ref!r}: no job id"
        try:
            job.started(job_id, template)
        except OSError as exc:
            cancelled = job.cancel()  # a job the run cannot record must not run unwatched
            return "error", f"cannot record AWX job {job_id} ({exc}): " + (
                "canceled" if cancelled else "could NOT be canceled, check the controller"
            )
        ignored = _ignored(answer.get("ignored_fields"), request)
        if ignored:
            cancelled = job.cancel()
            return "error", (
                f"job template {ref!r} does not prompt on launch for {', '.join(ignored)}, "
                f"so AWX would run it with the template's own: job {job_id} "
                + ("canceled" if cancelled else "could NOT be canceled, check the controller")
            )
        status, error = job.follow(request.timeout, cancel, self._poll, self._grace)
        if job.lost:
            return status, error
        problems = job.collect(finished=status in FINISHED or status == "timeout")
        if problems and error is None and status == "successful":
            error = "; ".join(problems)  # the hosts' recaps may be missing: say why
        elif problems:
            log.warning("AWX job %s: %s", job_id, job.redactor.text("; ".join(problems)))
        return status, error


def _stored_result(job: AwxJob, status: str, error: str | None, started: float) -> RunResult:
    """The run's result, its status and rc written beside its artifacts (when they exist)."""
    rc = exit_code(status, job.stats)
    if job.artifact_dir.is_dir():
        try:
            write_text(job.artifact_dir / "status", status, job.redactor)
            write_text(job.artifact_dir / "rc", str(rc), job.redactor)
        except OSError as exc:
            error = error or f"cannot write the run's status: {exc}"
    return RunResult(
        ident=job.ident,
        status=status,
        rc=rc,
        artifact_dir=str(job.artifact_dir),
        started_at=started,
        ended_at=time.time(),
        stats=job.stats,
        error=None if error is None else job.redactor.text(" ".join(error.split())),
        host_errors={h: end.describe() for h, end in job.outcomes.ends.items()},
    )


def _launch_body(request: RunRequest) -> dict[str, Any]:
    body: dict[str, Any] = {"limit": ",".join(request.hosts)}
    if request.extra_vars:
        body["extra_vars"] = dict(request.extra_vars)
    if request.check:
        body["job_type"] = "check"  # refused below if the template would run it for real
    return body


def _ignored(ignored: object, request: RunRequest) -> list[str]:
    """The launch fields (and var names) the template ignored that the run relies on."""
    if not isinstance(ignored, dict) or not ignored:
        return []
    found = [key for key in ("limit", "job_type") if key in ignored]
    var_names = set(request.extra_vars)
    nested = ignored.get("extra_vars")
    names = set(ignored) | (set(nested) if isinstance(nested, dict) else set())
    if nested is not None and not isinstance(nested, dict):
        names |= var_names  # the vars were ignored as a whole
    found += sorted(f"extra var {name!r}" for name in names & var_names)
    return found
