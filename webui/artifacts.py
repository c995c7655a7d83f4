"""A playbook run's ansible-runner artifacts for the web UI: events, stdout, a tar.gz of them.

Only directories under the data dir's ``runs/`` are read: a run row naming any other
path gets nothing shown and nothing downloaded.
"""

from __future__ import annotations

import io
import re
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from engine.execute import read_events

# CSI sequences (colours, cursor moves), OSC sequences (titles, links), other 2-byte escapes.
ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
MAX_STDOUT = 256 * 1024  # bytes shown in the page: the tail of a long run
MAX_EVENTS = 500
TASK_EVENTS = {
    "runner_on_ok": "ok",
    "runner_on_failed": "failed",
    "runner_on_skipped": "skipped",
    "runner_on_unreachable": "unreachable",
    "runner_item_on_ok": "ok",
    "runner_item_on_failed": "failed",
    "runner_item_on_skipped": "skipped",
}


def strip_ansi(text: str) -> str:
    """Text without terminal escape codes (the caller still escapes it as HTML)."""
    return ANSI_ESCAPE.sub("", text)


def safe_artifact_dir(artifact_dir: str, runs_dir: Path) -> Path | None:
    """The run's artifact directory if it exists inside ``runs_dir``, else None."""
    if not artifact_dir:
        return None
    try:
        root = runs_dir.resolve()
        path = Path(artifact_dir).resolve()
    except (OSError, RuntimeError):
        return None
    if path == root or not path.is_relative_to(root) or not path.is_dir():
        return None
    return path


def runner_artifacts(run_dir: Path, ident: str) -> Path:
    """Where ansible-runner put ``stdout`` and ``job_events/``: ``<run dir>/artifacts/<ident>``."""
    nested = run_dir / "artifacts" / ident
    return nested if nested.is_dir() else run_dir


def read_stdout(artifact_dir: Path) -> tuple[str, bool]:
    """The run's stdout without escape codes (its tail if long), and whether it was cut."""
    path = artifact_dir / "stdout"
    try:
        with path.open("rb") as file:
            size = file.seek(0, io.SEEK_END)
            file.seek(max(0, size - MAX_STDOUT))
            raw = file.read()
    except OSError:
        return "", False
    return strip_ansi(raw.decode("utf-8", "replace")), size > MAX_STDOUT


def task_events(artifact_dir: Path) -> list[dict[str, Any]]:
    """Per-task results: task name, host, ok/changed/failed/skipped/unreachable, duration."""
    found: list[dict[str, Any]] = []
    for event in read_events(artifact_dir):
        kind = TASK_EVENTS.get(str(event.get("event", "")))
        data = event.get("event_data")
        if kind is None or not isinstance(data, dict):
            continue
        result = data.get("res")
        if kind == "ok" and isinstance(result, dict) and result.get("changed") is True:
            kind = "changed"
        duration = data.get("duration")
        found.append(
            {
                "task": str(data.get("task", "")),
                "host": str(data.get("host", "")),
                "result": kind,
                "duration": float(duration) if isinstance(duration, int | float) else None,
            }
        )
        if len(found) >= MAX_EVENTS:
            break
    return found


class _Chunks(io.RawIOBase):
    """A write-only file that keeps what is written until it is drained."""

    def __init__(self) -> None:
        super().__init__()
        self.chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.chunks.append(chunk)
        return len(chunk)

    def drain(self) -> Iterator[bytes]:
        chunks, self.chunks = self.chunks, []
        yield from chunks


def _anonymous(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def stream_tar_gz(root: Path, name: str) -> Iterator[bytes]:
    """A gzipped tar of the directory's regular files and folders (no links), as it is built."""
    sink = _Chunks()
    with tarfile.open(fileobj=sink, mode="w|gz") as tar:
        tar.add(root, arcname=name, recursive=False, filter=_anonymous)
        for path in sorted(root.rglob("*")):
            if path.is_symlink() or not (path.is_file() or path.is_dir()):
                continue
            arcname = f"{name}/{path.relative_to(root).as_posix()}"
            tar.add(path, arcname=arcname, recursive=False, filter=_anonymous)
            yield from sink.drain()
    yield from sink.drain()
