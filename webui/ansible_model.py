"""The shape of a run's Ansible output as the pages show it (webui/ansible_output.py builds
it): plays holding tasks holding lines, each line and host result with its status (ok,
changed, failed, unreachable, skipped, ignored, warn), and the PLAY RECAP apart.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, field

from webui.artifacts import strip_ansi

# C0 and C1 controls but tab and newline, DEL, and the bidirectional overrides that make
# text read other than it is; whatever escape strip_ansi left half-done goes with them.
CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# Worst first: what a task, a play or a host shows when its lines differ.
SEVERITY = ("unreachable", "failed", "changed", "ok", "ignored", "skipped")
HEADER = re.compile(r"^(PLAY RECAP|PLAY|TASK|RUNNING HANDLER)(?: \[(.*)\])? \*+$")
RECAP_LINE = re.compile(r"^(\S+)\s+:\s+((?:[a-z]+=\d+\s*)+)$")
RECAP_FIELD = re.compile(r"([a-z]+)=(\d+)")
RECAP_STATUS = {"ok": "ok", "changed": "changed", "unreachable": "unreachable"} | {
    "failed": "failed",
    "skipped": "skipped",
    "rescued": "ok",
    "ignored": "ignored",
}


def clean(text: str) -> str:
    """Text without terminal escapes or control characters (tabs and newlines kept)."""
    return CONTROL.sub("", strip_ansi(text.replace("\r\n", "\n")))


def worst(statuses: Iterable[str]) -> str:
    """The most severe of the statuses ("" if none is a task result)."""
    found = set(statuses)
    return next((s for s in SEVERITY if s in found), "")


@dataclass
class Line:
    """One line of output and its status ("" when it has none)."""

    text: str
    status: str = ""


@dataclass
class Task:
    """A task (or handler): its lines, each host's result and the longest host's duration."""

    name: str
    lines: list[Line] = field(default_factory=list)
    hosts: dict[str, str] = field(default_factory=dict)
    duration: float | None = None

    @property
    def status(self) -> str:
        """The worst host result, else the worst line status."""
        return worst(self.hosts.values()) or worst(line.status for line in self.lines)


@dataclass
class Play:
    """A play and its tasks."""

    name: str
    tasks: list[Task] = field(default_factory=list)

    @property
    def status(self) -> str:
        """The worst of its tasks."""
        return worst(task.status for task in self.tasks)


@dataclass
class RecapHost:
    """One host's line of the PLAY RECAP: each count with the status it colours."""

    host: str
    counts: list[tuple[str, int, str]]

    @property
    def status(self) -> str:
        """Failed or unreachable over changed over ok, as Ansible colours the host name."""
        return worst(status for _, count, status in self.counts if count) or "ok"


@dataclass
class Output:
    """A run's output: lines before any play, the plays, the recap, and whether cut."""

    preamble: list[Line] = field(default_factory=list)
    plays: list[Play] = field(default_factory=list)
    recap: list[RecapHost] = field(default_factory=list)
    recap_text: list[str] = field(default_factory=list)  # recap lines not host counts
    cut: bool = False
    source: str = "events"

    @property
    def empty(self) -> bool:
        """True when nothing was printed yet."""
        return not (self.preamble or self.plays or self.recap or self.recap_text)


class Builder:
    """Adds lines to the current play and task, opening them as headers come."""

    def __init__(self, source: str) -> None:
        self.out = Output(source=source)
        self.task: Task | None = None

    def play(self, name: str) -> None:
        self.out.plays.append(Play(name))
        self.task = None

    def start_task(self, name: str) -> Task:
        if not self.out.plays:
            self.play("")
        self.task = Task(name)
        self.out.plays[-1].tasks.append(self.task)
        return self.task

    def add(self, lines: Iterable[Line]) -> None:
        target = self.task.lines if self.task is not None else self.out.preamble
        target.extend(lines)

    def recap(self, text: str) -> None:
        found = RECAP_LINE.match(text.strip())
        if found is None:
            if text.strip() and not HEADER.match(text.strip()):
                self.out.recap_text.append(text)
            return
        counts = [
            (name, int(count), RECAP_STATUS.get(name, ""))
            for name, count in RECAP_FIELD.findall(found.group(2))
        ]
        self.out.recap.append(RecapHost(found.group(1), counts))
