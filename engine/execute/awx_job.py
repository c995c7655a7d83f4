"""One launched AWX job: followed by polling until it ends, cancelled on request or at its
timeout, and stored under the run's artifact dir like a local run."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from engine.execute.awx_artifacts import (
    counter_of,
    host_summaries,
    runner_event,
    write_events,
    write_text,
)
from engine.execute.awx_client import API, AwxClient, AwxError
from engine.execute.host_outcomes import HostEnd, HostOutcomes
from engine.redact import Redactor
from engine.types import HostRunStats

log = logging.getLogger(__name__)

FINISHED = frozenset({"successful", "failed", "error", "canceled"})
_KNOWN = FINISHED | {"new", "pending", "waiting", "running"}
EVENTS_GRACE = 5.0  # AWX saves a job's last events shortly after the job ends


class AwxJob:
    """One launched job: followed, cancelled, and stored under the run's artifact dir."""

    def __init__(
        self,
        client: AwxClient,
        redactor: Redactor,
        ident: str,
        artifact_dir: Path,
        on_unreachable: Callable[[HostEnd], None] | None,
    ) -> None:
        self.client = client
        self.redactor = redactor
        self.ident = ident
        self.artifact_dir = artifact_dir
        self.outcomes = HostOutcomes(lambda _: True, on_unreachable=on_unreachable)
        self.watch_unreachable = on_unreachable is not None
        self.stats: dict[str, HostRunStats] = {}
        self.id = 0
        self._seen = 0  # the highest event counter already read while the job ran
        self._last: dict[str, Any] = {}  # the job as the controller last showed it
        self.lost = False  # the controller stopped answering: nothing more to read from it

    def started(self, job_id: int, template: int) -> None:
        """Remember the job, and leave its address with the run (no secret in it)."""
        self.id = job_id
        record = {"job": job_id, "template": template, "url": self.client.job_url(job_id)}
        write_text(self.artifact_dir / "awx_job", json.dumps(record) + "\n", self.redactor)

    def cancel(self) -> bool:
        """Ask the controller to cancel the job; False when the request failed."""
        try:
            self.client.cancel(self.id)
        except AwxError as exc:
            log.warning("cannot cancel AWX job %s: %s", self.id, self.redactor.text(str(exc)))
            return False
        return True

    def follow(
        self, timeout: float, cancel: threading.Event | None, poll: float, grace: float
    ) -> tuple[str, str | None]:
        """Poll until the job ends; cancel it on ``cancel`` or at ``timeout`` seconds."""
        deadline = time.monotonic() + timeout
        stopping: str | None = None  # "canceled" or "timeout" once we asked for it
        give_up = 0.0
        trouble: str | None = None  # the last failed poll, while the controller is away
        while True:
            try:
                status = self._status()
                trouble = None
                if status in FINISHED:
                    return _ended(status, stopping, self.id, self._last)
                if self.watch_unreachable:
                    self._read_unreachable()
            except AwxError as exc:
                if not exc.transient:
                    self.lost = True
                    self.cancel()  # best effort: we can no longer follow it
                    return "error", f"lost track of AWX job {self.id}: {exc}"
                trouble = str(exc)
            now = time.monotonic()
            if stopping is None:
                if cancel is not None and cancel.is_set():
                    stopping = "canceled"
                elif now >= deadline:
                    stopping = "timeout"
                if stopping is not None:
                    self.cancel()
                    give_up = now + grace
            elif now >= give_up:
                self.lost = trouble is not None
                why = trouble or f"still {self._last.get('status')} {grace:g}s later"
                reason = "at the action's timeout" if stopping == "timeout" else "on request"
                return "error", f"AWX job {self.id} canceled {reason}, not confirmed: {why}"
            wake = give_up if stopping else deadline
            pause = max(0.0, min(poll, wake - now))
            if cancel is not None and stopping is None:
                cancel.wait(pause)
            else:
                time.sleep(pause)

    def _status(self) -> str:
        self._last = self.client.job(self.id)
        status = self._last.get("status")
        if status not in _KNOWN:
            raise AwxError(f"malformed answer for job {self.id}: status {status!r}")
        return str(status)

    def _read_unreachable(self) -> None:
        """Tell ``on_unreachable`` of each host the job could not reach, as soon as seen."""
        params = {"event": "runner_on_unreachable", "counter__gt": str(self._seen)}
        for raw in self.client.pages(f"{API}/jobs/{self.id}/job_events/", params):
            self._seen = max(self._seen, counter_of(raw))
            self.outcomes(self.redactor.value(runner_event(raw, self.ident)))

    def collect(self, *, finished: bool) -> list[str]:
        """Store the job's recaps, events and stdout; what could not be read."""
        problems: list[str] = []
        try:
            summaries = self.client.pages(f"{API}/jobs/{self.id}/job_host_summaries/")
            self.stats = host_summaries(summaries)
        except AwxError as exc:
            problems.append(f"host summaries not read: {exc}")
        if finished:
            self._await_events()
        try:
            pages = self.client.pages(f"{API}/jobs/{self.id}/job_events/", {"order_by": "counter"})
            events = [self.redactor.value(runner_event(e, self.ident)) for e in pages]
            for event in events:
                self.outcomes(event)  # each host's first failure, for the record
            write_events(self.artifact_dir, events, self.redactor)
        except AwxError as exc:
            problems.append(f"job events not read: {exc}")
        try:
            write_text(self.artifact_dir / "stdout", self.client.stdout(self.id), self.redactor)
        except AwxError as exc:
            problems.append(f"stdout not read: {exc}")
        return problems

    def _await_events(self) -> None:
        """Wait, briefly, until the controller has saved every event of the ended job."""
        until = time.monotonic() + EVENTS_GRACE
        while self._last.get("event_processing_finished") is False and time.monotonic() < until:
            time.sleep(0.2)
            try:
                self._last = self.client.job(self.id)
            except AwxError:
                return


def _ended(
    status: str, stopping: str | None, job_id: int, job: Mapping[str, Any]
) -> tuple[str, str | None]:
    """The run's status once the job has ended, and why it did not succeed."""
    if status == "canceled" and stopping is not None:
        return stopping, f"AWX job {job_id} canceled" + (
            " at the action's timeout" if stopping == "timeout" else ""
        )
    if status == "canceled":
        return "canceled", f"AWX job {job_id} was canceled on the controller"
    if status == "error":
        why = job.get("job_explanation")
        return "error", f"AWX job {job_id} ended in error" + (f": {why}" if why else "")
    return status, None
