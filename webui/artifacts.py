"""A playbook run's ansible-runner artifacts for the web UI: events, stdout, a tar.gz of them.

Every reader starts from ``run_artifacts``: the run's recorded directory must lie inside
the data dir's ``runs/``, be a real directory, and be reached through no symlink below
``runs/``. Files are opened with O_NOFOLLOW, so a symlink planted in a run's directory
(``stdout`` -> a file elsewhere) is never read. The tar.gz holds an allow-list (stdout,
status, rc, job events), never ``env/``, ``command`` or a vars file. What is shown or
downloaded passes through the same Redactor, each file redacted whole.

``bp`` serves a run's download by ident (the run page's link); incidents.py serves the same
archive under its incident.
"""

from __future__ import annotations

import io
import itertools
import json
import os
import re
import stat
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from flask import Blueprint, Response, abort, current_app
from flask.typing import ResponseReturnValue

from engine.read.runs import find_run
from engine.redact import Redactor
from webui.converters import IdentConverter, use_converters
from webui.db import get_sessions
from webui.redaction import redactor
from webui.security import login_required

bp = Blueprint("runs", __name__)
use_converters(bp)

# CSI sequences (colours, cursor moves), OSC sequences (titles, links), other 2-byte escapes.
ANSI_ESCAPE = re.compile(r"\x1b(?:\[[0-?]*[ -/]*[@-~]|\][^\x07\x1b]*(?:\x07|\x1b\\)|[@-Z\\-_])")
MAX_STDOUT = 256 * 1024  # bytes shown in the page: the tail of a long run
MAX_CUT_LINE = 4096  # bytes dropped from a tail that starts inside one endless line
MAX_EVENT = 4 * 1024 * 1024  # bytes: a larger job event file is skipped
MAX_TAR_FILE = 16 * 1024 * 1024  # bytes of one file in a download: its tail past this
MAX_TAR_EVENTS = 20_000  # job event files in a download
TAR_FILES = ("stdout", "status", "rc")  # a run's outcome; job_events/ is added apart
# O_NONBLOCK: opening a FIFO planted as `stdout` must not hang the request.
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
DIR_FLAGS = READ_FLAGS | os.O_DIRECTORY
IDENT = re.compile(IdentConverter.regex)
RUNNING = ("pending", "staged", "running")  # statuses whose files are still being written


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


def redacted_tail(file: IO[bytes], redactor: Redactor, limit: int) -> tuple[str, bool]:
    """The file's text without escape codes, redacted whole (its tail if long), and whether cut."""
    size = file.seek(0, io.SEEK_END)
    start = max(0, size - limit)
    file.seek(start)
    raw = file.read(limit)
    if start:
        # Start at a line: a secret cut in half here would escape redaction.
        _, newline, rest = raw.partition(b"\n")
        raw = rest if newline else raw[MAX_CUT_LINE:]
    return redactor.text(strip_ansi(raw.decode("utf-8", "replace"))), start > 0


def read_stdout(artifact_dir: Path, redactor: Redactor) -> tuple[str, bool]:
    """The run's stdout without escape codes, redacted (its tail if long), and whether cut."""
    file = open_regular(artifact_dir / "stdout")
    if file is None:
        return "", False
    with file:
        return redacted_tail(file, redactor, MAX_STDOUT)


def _counter(event: dict[str, Any]) -> int:
    counter = event.get("counter")
    return counter if isinstance(counter, int) and not isinstance(counter, bool) else 0


def _event_files(dir_fd: int) -> Iterator[tuple[str, dict[str, Any], os.stat_result]]:
    """Each job event file in the folder (name, event, stat) by name; links and partial,
    oversized or unreadable files skipped. Names hold no "/" and are never "." or ".."."""
    for name in sorted(os.listdir(dir_fd)):  # by fd, which Path cannot list
        if not name.endswith(".json") or name.endswith("-partial.json"):
            continue
        file = open_regular(name, dir_fd)
        if file is None:
            continue
        with file:
            raw, st = file.read(MAX_EVENT + 1), os.fstat(file.fileno())
        try:
            event = json.loads(raw) if len(raw) <= MAX_EVENT else None
        except (ValueError, RecursionError):
            continue  # a half-written event of a run still in progress
        if isinstance(event, dict):
            yield name, event, st


def read_events(artifact_dir: Path) -> list[dict[str, Any]]:
    """The run's job events ordered by counter; links, partial and unreadable files skipped."""
    try:
        dir_fd = os.open(artifact_dir / "job_events", DIR_FLAGS)
    except OSError:
        return []
    try:
        events = [event for _, event, _ in _event_files(dir_fd)]
    finally:
        os.close(dir_fd)
    return sorted(events, key=_counter)


def _drain(sink: io.BytesIO) -> Iterator[bytes]:
    """What the tar wrote to ``sink`` since the last call, if anything; then an empty buffer."""
    data = sink.getvalue()
    sink.seek(0)
    sink.truncate()
    if data:  # an empty chunk would end a chunked response early
        yield data


def _info(name: str, kind: bytes, st: os.stat_result, size: int = 0) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = stat.S_IMODE(st.st_mode)
    info.mtime = int(st.st_mtime)
    info.size = size
    return info  # uid, gid and owner names stay 0 and "": nothing about the server's users


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes, st: os.stat_result) -> None:
    tar.addfile(_info(name, tarfile.REGTYPE, st, len(data)), io.BytesIO(data))


def _add_events(tar: tarfile.TarFile, root_fd: int, name: str, redactor: Redactor) -> None:
    """Each whole job event, parsed and redacted as data (secret-named fields hidden too)."""
    try:
        dir_fd = os.open("job_events", DIR_FLAGS, dir_fd=root_fd)
    except OSError:
        return
    try:
        tar.addfile(_info(f"{name}/job_events", tarfile.DIRTYPE, os.fstat(dir_fd)))
        for entry, event, st in itertools.islice(_event_files(dir_fd), MAX_TAR_EVENTS):
            clean = json.dumps(redactor.value(event), ensure_ascii=False)
            _add_bytes(tar, f"{name}/job_events/{entry}", clean.encode(), st)
    finally:
        os.close(dir_fd)


def stream_tar_gz(root: Path, name: str, redactor: Redactor) -> Iterator[bytes]:
    """A gzipped tar of the run's outcome files and job events, redacted, streamed as built.

    An allow-list, never the whole folder: ``command`` (the child's environment), ``env/``,
    inventories and vars files stay out whatever the folder holds. Text files are redacted
    whole, as the pages show them; links, FIFOs and folders other than job_events are left out.
    """
    sink = io.BytesIO()  # the stream tar writes in order, never seeks
    try:
        root_fd = os.open(root, DIR_FLAGS)
    except OSError:
        return
    try:
        with tarfile.open(fileobj=sink, mode="w|gz") as tar:
            tar.addfile(_info(name, tarfile.DIRTYPE, os.fstat(root_fd)))
            for entry in TAR_FILES:
                file = open_regular(entry, root_fd)
                if file is not None:
                    with file:
                        text, _ = redacted_tail(file, redactor, MAX_TAR_FILE)
                        _add_bytes(tar, f"{name}/{entry}", text.encode(), os.fstat(file.fileno()))
                yield from _drain(sink)
            _add_events(tar, root_fd, name, redactor)
        yield from _drain(sink)
    finally:
        os.close(root_fd)


def download_response(run: Mapping[str, Any]) -> Response:
    """The ended run's archive (``run-<id>/``) as a streamed download; 404 or 409 pages else.
    As redacted as the pages showing the run, so it needs no more than their role."""
    folder = run_artifacts(run, app_runs_dir())
    if folder is None:
        abort(404, description=f"The artifacts of run {run['id']} are not in the data directory.")
    if run["status"] in RUNNING:
        # A live run's files are still being written, secrets not yet scrubbed among them.
        ended = "its artifacts can be downloaded once it ends"
        abort(409, description=f"The run is still in progress; {ended}.")
    name = f"run-{run['id']}"
    return Response(
        stream_tar_gz(folder, name, redactor()),
        mimetype="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{name}-artifacts.tar.gz"'},
    )


@bp.get("/playbooks/runs/<ident:ident>/artifacts.tar.gz")
@login_required
def download(ident: str) -> ResponseReturnValue:
    """A run's ansible-runner artifacts (stdout, status, rc, job events), redacted, as a tar.gz."""
    found = find_run(get_sessions(), ident)
    if found is None:
        abort(404, description=f"No playbook run {ident!r}.")
    return download_response(found.model_dump(mode="json"))
