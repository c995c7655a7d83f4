"""A run's Ansible output as the pages show it: plays and tasks to fold, each line with its
status (ok, changed, failed, unreachable, skipped, ignored, warn), and the PLAY RECAP apart.

Built server-side from the run's job events (each event's stdout carries its status), or,
without events, from the stdout file's lines (read by their ``ok: [host]`` prefixes). Every
terminal escape and control character is removed (ansible_model.clean) and the text
redacted; the template escapes it as HTML. One model for the run page and the incident
page, so a task has the same status on both.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from engine.redact import Redactor
from webui.ansible_model import HEADER, Builder, Line, Output, Task, clean, worst
from webui.artifacts import app_runs_dir, read_events, read_stdout, run_artifacts
from webui.redaction import redactor

MAX_LINES = 4000  # lines shown (the recap aside): the end of a longer output
MAX_CHARS = 256 * 1024  # characters of them, as much as the stdout file's tail
MAX_LINE = 8192  # characters of one line; its start is kept

RUNNER = re.compile(r"runner(?:_item)?_on_(ok|failed|skipped|unreachable)")
# A stdout line's status by how the default callback starts it; others carry on the last.
PREFIXES = (
    ("ok: [", "ok"),
    ("changed: [", "changed"),
    ("skipping: [", "skipped"),
    ("fatal: [", "failed"),
    ("failed: [", "failed"),
    ("...ignoring", "ignored"),
    ("[ERROR]", "failed"),
    ("ERROR!", "failed"),
    ("[WARNING]", "warn"),
    ("[DEPRECATION WARNING]", "warn"),
    ("FAILED - RETRYING", "warn"),
    ("included: ", ""),
)


def _lines(text: str, status: str | None) -> list[Line]:
    """The event's stdout as lines, without the blank ones and the play/task headers; each
    line has the event's status, or (an event that is no task result) its prefix's."""
    found, previous = [], ""
    for line in clean(text).split("\n"):
        if line.strip() and not HEADER.match(line.strip()):
            previous = status if status is not None else _line_status(line, previous)
            found.append(Line(line, previous))
    return found


def _event_status(event: Mapping[str, Any], data: Mapping[str, Any]) -> str | None:
    """ok, changed, failed, ignored, skipped or unreachable for a runner event; else None."""
    found = RUNNER.fullmatch(str(event.get("event", "")))
    if found is None:
        return None
    status = found.group(1)
    res = data.get("res")
    if status == "ok" and isinstance(res, dict) and res.get("changed") is True:
        return "changed"
    if status == "failed" and data.get("ignore_errors") is True:
        return "ignored"
    return status


def from_events(events: Iterable[Mapping[str, Any]], hide: Redactor) -> Output:
    """The output of a run's job events (ordered by counter), each event's text redacted."""
    build = Builder("events")
    for event in events:
        data = event.get("event_data")
        data = data if isinstance(data, dict) else {}
        kind = str(event.get("event", ""))
        stdout = hide.text(str(event.get("stdout") or ""))
        if kind == "playbook_on_play_start":
            build.play(clean(hide.text(str(data.get("play") or data.get("name") or ""))))
        elif kind in ("playbook_on_task_start", "playbook_on_handler_task_start"):
            build.start_task(clean(hide.text(str(data.get("task") or data.get("name") or ""))))
        elif kind == "playbook_on_stats":
            for line in clean(stdout).split("\n"):
                build.recap(line)
        else:
            status = _event_status(event, data)
            task = clean(hide.text(str(data.get("task") or "")))
            if status is not None and (build.task is None or build.task.name != task):
                build.start_task(task)  # a result whose task_start event is missing
            if status is not None and build.task is not None and data.get("host"):
                _host_result(build.task, clean(hide.text(str(data["host"]))), status, data)
            build.add(_lines(stdout, status))
    return build.out


def _host_result(task: Task, host: str, status: str, data: Mapping[str, Any]) -> None:
    task.hosts[host] = worst([status, task.hosts.get(host, "")])
    duration = data.get("duration")
    if isinstance(duration, int | float) and not isinstance(duration, bool):
        task.duration = max(task.duration or 0.0, float(duration))


def _line_status(line: str, previous: str) -> str:
    """A stdout line's status: by its prefix, else the previous line's for its continuation."""
    text = line.lstrip()
    for prefix, status in PREFIXES:
        if text.startswith(prefix):
            if status == "failed" and ": UNREACHABLE!" in text:
                return "unreachable"
            return status
    return previous


HOST_OF = re.compile(r"^(?:ok|changed|skipping|fatal|failed): \[([^\]]+)\]")


def from_stdout(text: str) -> Output:
    """The output read from the stdout file's lines (already redacted, escapes removed)."""
    build = Builder("stdout")
    status, in_recap, last = "", False, ""
    for line in clean(text).split("\n"):
        header = HEADER.match(line.strip())
        if header is not None:
            kind, name = header.group(1), clean(header.group(2) or "")
            in_recap = kind == "PLAY RECAP"
            if kind == "PLAY":
                build.play(name)
            elif kind in ("TASK", "RUNNING HANDLER"):
                build.start_task(name)
            status = ""
            continue
        if in_recap:
            build.recap(line)
            continue
        if not line.strip():
            status = ""
            continue
        status = _line_status(line, status)
        host = HOST_OF.match(line.lstrip())
        task = build.task
        if host is not None and task is not None and status:
            last = host.group(1)
            task.hosts[last] = worst([status, task.hosts.get(last, "")])
        elif status == "ignored" and task is not None and task.hosts.get(last) == "failed":
            task.hosts[last] = "ignored"  # "...ignoring" follows the failure it forgives
        build.add([Line(line, status)])
    return build.out


def _cut(out: Output, limit: int, budget: int = MAX_CHARS) -> Output:
    """Keep the last ``limit`` lines and ``budget`` characters: the earliest lines go first
    (headers and recap stay); one endless line keeps its start and says it was cut."""
    blocks = [out.preamble] + [task.lines for play in out.plays for task in play.tasks]
    for block in blocks:
        for line in block:
            if len(line.text) > MAX_LINE:
                line.text, out.cut = line.text[:MAX_LINE] + " … (line cut)", True
    lines = sum(len(block) for block in blocks)
    chars = sum(len(line.text) for block in blocks for line in block)
    for block in blocks:
        drop = 0
        while drop < len(block) and (lines > limit or chars > budget):
            chars, lines, drop = chars - len(block[drop].text), lines - 1, drop + 1
        if drop:
            del block[:drop]
            out.cut = True
    return out


def read_output(folder: Path, hide: Redactor, limit: int = MAX_LINES) -> Output:
    """The run's output from its artifact folder: job events if they hold any text, else
    the stdout file (its tail if long)."""
    events = read_events(folder)
    text, cut = read_stdout(folder, hide)
    if any(event.get("stdout") for event in events):
        out = from_events(events, hide)
        if not (out.recap or out.recap_text):  # its stats event not written (yet): the file's
            told = from_stdout(text)
            out.recap, out.recap_text = told.recap, told.recap_text
        return _cut(out, limit)
    out = from_stdout(text)
    if not out.plays and any(RUNNER.fullmatch(str(e.get("event", ""))) for e in events):
        # Events without text (written by hand, or trimmed): their tasks, the file's lines.
        tasks = from_events(events, hide)
        tasks.preamble, tasks.recap_text, tasks.source = out.preamble, out.recap_text, "both"
        tasks.recap = out.recap
        out = tasks
    out = _cut(out, limit)
    out.cut = out.cut or cut
    return out


def output_for_run(run: Mapping[str, Any]) -> Output | None:
    """The output of a run (a run row as a dict), or None if its artifacts are not readable.
    A template global: the run page and the incident page render it with one partial."""
    folder = run_artifacts(run, app_runs_dir())
    return None if folder is None else read_output(folder, redactor())
