"""A playbook run's ansible-runner artifacts for the web UI: events, stdout, a tar.gz of them.

Every reader starts from ``run_artifacts``: the run's recorded directory must lie inside
the data dir's ``runs/``, be a real directory, and be reached through no symlink below
``runs/``. Files are opened with O_NOFOLLOW, so a symlink planted in a run's directory
(``stdout`` -> a file elsewhere) is never read; the tar.gz leaves links out and never
descends into one. What is shown or downloaded passes through a Redactor first.
"""

from __future__ import annotations

import io
import json
import os
import re
import stat
import tarfile
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from flask import current_app

from engine.redact import Redactor
from webui.converters import IdentConverter

# CSI sequences (colours, cursor moves), OSC sequences (titles, links), other 2-byte escapes.
ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
MAX_STDOUT = 256 * 1024  # bytes shown in the page: the tail of a long run
MAX_CUT_LINE = 4096  # bytes dropped from a tail that starts inside one endless line
MAX_EVENT = 4 * 1024 * 1024  # bytes: a larger job event file is skipped
MAX_EVENTS = 500
MAX_TAR_DEPTH = 16  # folders deep; ansible-runner's layout is two
SPOOL = 1024 * 1024  # bytes of one redacted file kept in memory while the tar is built
# O_NONBLOCK: opening a FIFO planted as `stdout` must not hang the request.
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
DIR_FLAGS = READ_FLAGS | os.O_DIRECTORY
IDENT = re.compile(IdentConverter.regex)
RUNNING = ("pending", "running")  # run statuses whose files are still being written
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


def app_runs_dir() -> Path:
    """The running app's ``<data dir>/runs``, the only place artifacts are read from."""
    return Path(current_app.config["AUTOSRE_DATA_DIR"]) / "runs"


def contained_dir(recorded: str, runs_dir: Path) -> Path | None:
    """The directory ``recorded`` names if it is below ``runs_dir`` through real folders only."""
    path = Path(recorded)
    if not recorded or "\x00" in recorded or not path.is_absolute() or ".." in path.parts:
        return None
    try:
        bases = (runs_dir.absolute(), runs_dir.resolve())
    except (OSError, RuntimeError):
        return None
    base = next((b for b in bases if path != b and path.is_relative_to(b)), None)
    if base is None:
        return None
    current = base
    for part in path.relative_to(base).parts:
        current = current / part
        try:
            mode = current.lstat().st_mode
        except OSError:
            return None
        if not stat.S_ISDIR(mode):  # a symlink's lstat is a link, never a directory
            return None
    return current


def run_artifacts(run: Mapping[str, Any], runs_dir: Path) -> Path | None:
    """Where the run's ``stdout`` and ``job_events/`` are, or None if not safely in runs_dir.

    A run records its private data dir (``runs/<ident>``) or ansible-runner's artifact dir
    inside it (``runs/<ident>/artifacts/<ident>``); both lead to the latter.
    """
    folder = contained_dir(str(run.get("artifact_dir") or ""), runs_dir)
    ident = str(run.get("ident") or "")
    if folder is None or not IDENT.fullmatch(ident):
        return folder
    return contained_dir(str(folder / "artifacts" / ident), runs_dir) or folder


def open_regular(name: str | Path, dir_fd: int | None = None) -> IO[bytes] | None:
    """The regular file ``name`` opened for reading, never through a symlink; else None."""
    try:
        fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        regular = stat.S_ISREG(os.fstat(fd).st_mode)
    except OSError:
        regular = False
    if not regular:
        os.close(fd)
        return None
    return os.fdopen(fd, "rb")


def read_stdout(artifact_dir: Path, redactor: Redactor) -> tuple[str, bool]:
    """The run's stdout without escape codes, redacted (its tail if long), and whether cut."""
    file = open_regular(artifact_dir / "stdout")
    if file is None:
        return "", False
    with file:
        size = file.seek(0, io.SEEK_END)
        start = max(0, size - MAX_STDOUT)
        file.seek(start)
        raw = file.read(MAX_STDOUT)
    if start:
        # Start at a line: a secret cut in half here would escape redaction.
        _, newline, rest = raw.partition(b"\n")
        raw = rest if newline else raw[MAX_CUT_LINE:]
    return redactor.text(strip_ansi(raw.decode("utf-8", "replace"))), start > 0


def _counter(event: dict[str, Any]) -> int:
    counter = event.get("counter")
    return counter if isinstance(counter, int) and not isinstance(counter, bool) else 0


def read_events(artifact_dir: Path) -> list[dict[str, Any]]:
    """The run's job events ordered by counter; links, partial and unreadable files skipped."""
    try:
        dir_fd = os.open(artifact_dir / "job_events", DIR_FLAGS)
    except OSError:
        return []
    events: list[dict[str, Any]] = []
    try:
        for name in os.listdir(dir_fd):  # noqa: PTH208 - by fd, which Path cannot list
            if not name.endswith(".json") or name.endswith("-partial.json"):
                continue
            file = open_regular(name, dir_fd)
            if file is None:
                continue
            with file:
                raw = file.read(MAX_EVENT + 1)
            try:
                event = json.loads(raw) if len(raw) <= MAX_EVENT else None
            except (ValueError, RecursionError):
                continue  # a half-written event of a run still in progress
            if isinstance(event, dict):
                events.append(event)
    finally:
        os.close(dir_fd)
    return sorted(events, key=_counter)


def task_events(artifact_dir: Path, redactor: Redactor) -> list[dict[str, Any]]:
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
                "task": redactor.text(str(data.get("task", ""))),
                "host": redactor.text(str(data.get("host", ""))),
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


def _info(name: str, kind: bytes, st: os.stat_result, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    info.size = size
    return info  # uid, gid and owner names stay 0 and "": nothing about the server's users


def _add_file(tar: tarfile.TarFile, file: IO[bytes], name: str, redactor: Redactor) -> None:
    st = os.fstat(file.fileno())
    with tempfile.SpooledTemporaryFile(max_size=SPOOL) as clean:
        for line in file:
            text = line.decode("utf-8", "surrogateescape")
            clean.write(redactor.text(text).encode("utf-8", "surrogateescape"))
        size = clean.tell()
        clean.seek(0)
        tar.addfile(_info(name, tarfile.REGTYPE, st, size), clean)


def _add_dir(
    tar: tarfile.TarFile, dir_fd: int, name: str, redactor: Redactor, sink: _Chunks, depth: int
) -> Iterator[bytes]:
    tar.addfile(_info(name, tarfile.DIRTYPE, os.fstat(dir_fd)))
    for entry in sorted(os.listdir(dir_fd)):
        try:
            mode = os.stat(entry, dir_fd=dir_fd, follow_symlinks=False).st_mode
        except OSError:
            continue
        if stat.S_ISREG(mode):
            file = open_regular(entry, dir_fd)
            if file is not None:
                with file:
                    _add_file(tar, file, f"{name}/{entry}", redactor)
        elif stat.S_ISDIR(mode) and depth < MAX_TAR_DEPTH:
            try:
                child = os.open(entry, DIR_FLAGS, dir_fd=dir_fd)
            except OSError:
                continue
            try:
                yield from _add_dir(tar, child, f"{name}/{entry}", redactor, sink, depth + 1)
            finally:
                os.close(child)
        yield from sink.drain()


def stream_tar_gz(root: Path, name: str, redactor: Redactor) -> Iterator[bytes]:
    """A gzipped tar of the folder's regular files and folders (no links), redacted, as built."""
    sink = _Chunks()
    try:
        root_fd = os.open(root, DIR_FLAGS)
    except OSError:
        return
    try:
        with tarfile.open(fileobj=sink, mode="w|gz") as tar:
            yield from _add_dir(tar, root_fd, name, redactor, sink, 0)
        yield from sink.drain()
    finally:
        os.close(root_fd)
