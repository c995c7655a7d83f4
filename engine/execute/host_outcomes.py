"""Each host's own end in a batched run, read from its events as they arrive.

A host Ansible cannot reach is dropped from the play at once; waiting for the slowest
host of its batch before its incident moves on cost 37 to 48 s on a four-host lab. The
first unreachable event of a host is reported as soon as it is written. Failed tasks are
only remembered (a ``rescue`` may still save the host), so that the record holds
Ansible's own message and not just ``failures: 1``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

_MAX_MESSAGE = 500  # an SSH banner or a module's traceback may be long; the record is a line

EventHandler = Callable[[dict[str, Any]], bool]


@dataclass(frozen=True, slots=True)
class HostEnd:
    """Why a host's part of a run failed, in Ansible's words (already redacted)."""

    host: str
    outcome: Literal["unreachable", "failed"]
    message: str
    task: str
    at: float

    def describe(self) -> str:
        """One line for the incident's record."""
        return f"{self.outcome} at task {self.task!r}: {self.message}"


class HostOutcomes:
    """Wraps the run's event handler; ``on_unreachable`` is called once per unreachable host."""

    def __init__(
        self,
        handler: EventHandler,
        *,
        on_unreachable: Callable[[HostEnd], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._handler = handler
        self._on_unreachable = on_unreachable
        self._clock = clock
        self._lock = threading.Lock()
        self._ends: dict[str, HostEnd] = {}

    def __call__(self, event: dict[str, Any]) -> bool:
        """Let the inner handler redact and keep the event, then read the host's end from it."""
        keep = self._handler(event)
        kind = event.get("event")
        if kind not in ("runner_on_unreachable", "runner_on_failed"):
            return keep
        data = event.get("event_data")
        if not isinstance(data, dict) or data.get("ignore_errors"):
            return keep
        host = data.get("host")
        if not isinstance(host, str):
            return keep
        outcome: Literal["unreachable", "failed"] = (
            "unreachable" if kind == "runner_on_unreachable" else "failed"
        )
        end = HostEnd(host, outcome, _message(data.get("res")), str(data.get("task", "?")), 0.0)
        with self._lock:
            if host in self._ends:
                return keep  # the first end of a host is the one that matters
            end = HostEnd(end.host, end.outcome, end.message, end.task, self._clock())
            self._ends[host] = end
        if outcome == "unreachable" and self._on_unreachable is not None:
            self._on_unreachable(end)
        return keep

    @property
    def ends(self) -> Mapping[str, HostEnd]:
        """Every host's first failure so far."""
        with self._lock:
            return dict(self._ends)


def _message(res: object) -> str:
    """Ansible's own account: ``msg``, else the command's stderr, on one line."""
    text = ""
    if isinstance(res, dict):
        for key in ("msg", "stderr", "module_stderr", "reason"):
            value = res.get(key)
            if isinstance(value, str) and value.strip():
                text = value
                break
    line = " ".join(text.split())
    return (line or "no message")[:_MAX_MESSAGE]
