"""Redaction of a run's directory: while the run is live (every event before ansible-runner
writes it, the ``command`` file as soon as it exists) and once more after it ends.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.redact import Redactor

_EVENT_UUID = re.compile(r"[0-9a-fA-F-]{1,64}")


class CommandRedaction:
    """ansible-runner's status handler: redacts the ``command`` artifact (which holds the
    child's environment) as soon as runner has written it, before Ansible starts."""

    def __init__(self, redactor: Redactor, command: Path) -> None:
        self._redactor = redactor
        self._command = command

    def __call__(self, status: Mapping[str, Any], **_: Any) -> None:
        """On "running" (the file is written, the child not yet spawned), redact the file."""
        if status.get("status") == "running":
            with contextlib.suppress(OSError):  # the scrub after the run tries again
                scrub_file(self._command, self._redactor)


class LiveRedaction:
    """ansible-runner's event handler: redacts each event before runner writes it.

    The callback plugin leaves each event's data in ``<partials>/job_events`` (where
    ``AWX_ISOLATED_DATA_DIR`` points); it is merged here, as runner would have done,
    and removed. The redacted ``stdout`` of each event is appended to the artifact.
    """

    def __init__(self, redactor: Redactor, *, partials: Path, stdout: Path) -> None:
        self._redactor = redactor
        self._partials = partials / "job_events"
        self._stdout = stdout

    def __call__(self, event: dict[str, Any]) -> bool:
        """Redact ``event`` in place and append its stdout; True: runner writes it."""
        self._merge_partial(event)
        redacted = self._redactor.value(event)
        event.clear()
        event.update(redacted)
        text = event.get("stdout")
        if isinstance(text, str) and text:
            with (
                contextlib.suppress(OSError),  # the events still hold the output
                self._stdout.open("a", encoding="utf-8") as handle,
            ):
                handle.write(text + "\n")
        return True

    def _merge_partial(self, event: dict[str, Any]) -> None:
        uuid = event.get("uuid")
        if not isinstance(uuid, str) or not _EVENT_UUID.fullmatch(uuid):
            return
        partial = self._partials / f"{uuid}-partial.json"
        try:
            data = json.loads(partial.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return  # verbose output lines have no event data
        partial.unlink(missing_ok=True)
        if isinstance(data, dict):
            event.update(data)


def scrub_run_dir(private_dir: Path, redactor: Redactor) -> str | None:
    """Scrub a finished run's directory; None, or why it could not be done."""
    try:
        (private_dir / "env" / "extravars").unlink(missing_ok=True)
        scrub_dir(private_dir, redactor)
    except OSError as exc:
        return f"could not scrub secrets from {private_dir}: {exc}"
    return None


def scrub_dir(root: Path, redactor: Redactor) -> None:
    """Redact every file under root, and remove runner's raw ``*-partial.json`` event data."""
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink()):
        if path.name.endswith(("-partial.json", "-partial.json.tmp")):
            path.unlink()
        else:
            scrub_file(path, redactor)


def scrub_file(path: Path, redactor: Redactor) -> None:
    """Redact one file in place (JSON as data, anything else as text)."""
    raw = path.read_bytes()
    try:
        data = json.loads(raw)
    except ValueError:
        data = None
    if isinstance(data, dict | list):
        clean = redactor.value(data)
        new = json.dumps(clean).encode() if clean != data else raw
    else:
        text = raw.decode("utf-8", "surrogateescape")
        new = redactor.text(text).encode("utf-8", "surrogateescape")
    if new != raw:
        path.write_bytes(new)
