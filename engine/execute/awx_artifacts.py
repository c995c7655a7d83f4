"""An AWX job stored like a local ansible-runner run, so that engine/execute/results.py,
the reconciler and the web UI read it back the same way.

Under ``runs_dir/<ident>/artifacts/<ident>/``: ``job_events/<counter>-<uuid>.json`` in
ansible-runner's event shape, ``stdout``, ``status``, ``rc`` and ``awx_job`` (the job's
id and API address). Everything is redacted before it is written.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.redact import Redactor
from engine.types import HostRunStats

_UUID = re.compile(r"[0-9a-fA-F-]{1,64}")
# The keys of an ansible-runner event that an AWX job event also has.
_EVENT_KEYS = ("uuid", "counter", "stdout", "start_line", "end_line", "event", "created")
_SUMMARY_FIELDS = {"dark": "unreachable"} | {
    key: key for key in ("ok", "changed", "failures", "skipped", "rescued", "ignored")
}
# ansible-runner's rc for a run it stopped (canceled or timed out).
STOPPED_RC = 254


def runner_event(event: Mapping[str, Any], ident: str) -> dict[str, Any]:
    """An AWX job event in the shape ansible-runner writes (``event_data`` with the host)."""
    shaped: dict[str, Any] = {key: event[key] for key in _EVENT_KEYS if key in event}
    shaped["runner_ident"] = ident
    shaped["parent_uuid"] = event.get("parent_uuid") or ""
    data = event.get("event_data")
    data = dict(data) if isinstance(data, Mapping) else {}
    # AWX keeps the host and task beside event_data too; runner keeps them inside it.
    for key, source in (("host", "host_name"), ("task", "task"), ("play", "play")):
        value = event.get(source)
        if key not in data and isinstance(value, str) and value:
            data[key] = value
    shaped["event_data"] = data
    return shaped


def counter_of(event: Mapping[str, Any]) -> int:
    """The event's counter (0 when the controller gave none)."""
    counter = event.get("counter")
    return counter if isinstance(counter, int) and not isinstance(counter, bool) else 0


def write_events(artifact_dir: Path, events: Iterable[dict[str, Any]], redactor: Redactor) -> int:
    """Write each event (redacted) as ``job_events/<counter>-<uuid>.json``; how many."""
    folder = artifact_dir / "job_events"
    folder.mkdir(parents=True, exist_ok=True)
    written = 0
    for event in events:
        counter = counter_of(event)
        uuid = event.get("uuid")
        name = uuid if isinstance(uuid, str) and _UUID.fullmatch(uuid) else f"awx{written}"
        path = folder / f"{counter}-{name}.json"
        path.write_text(json.dumps(redactor.value(event)), encoding="utf-8")
        written += 1
    return written


def write_text(path: Path, text: str, redactor: Redactor) -> None:
    """Write one artifact file, redacted."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(redactor.text(text), encoding="utf-8")


def host_summaries(summaries: Iterable[Mapping[str, Any]]) -> dict[str, HostRunStats]:
    """AWX's job_host_summaries as one recap per host."""
    stats: dict[str, HostRunStats] = {}
    for summary in summaries:
        host = summary.get("host_name")
        if not isinstance(host, str) or not host:
            continue
        counts = {
            field: int(value)
            for key, field in _SUMMARY_FIELDS.items()
            if isinstance(value := summary.get(key), int) and not isinstance(value, bool)
        }
        stats[host] = HostRunStats(**counts)
    return stats


def exit_code(status: str, stats: Mapping[str, HostRunStats]) -> int:
    """The rc ansible-playbook would have given: 0 successful, 2 a host failed,
    4 a host unreachable, 254 stopped, 1 anything else."""
    if status == "successful":
        return 0
    if status in ("canceled", "timeout"):
        return STOPPED_RC
    if status == "failed":
        if any(s.failures for s in stats.values()):
            return 2
        if any(s.unreachable for s in stats.values()):
            return 4
    return 1
