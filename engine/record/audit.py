"""The JSONL audit log: one line per recorded event, appended and flushed at once."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Any

from engine.redact import Redactor


class AuditLog:
    """Append-only JSON Lines file; safe to share between the engine's threads."""

    def __init__(self, path: Path, *, redactor: Redactor | None = None) -> None:
        self.path = path
        self.redactor = redactor or Redactor()
        self._lock = threading.Lock()
        path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any]) -> None:
        """Append one record, redacted, as one line and push it to disk."""
        clean = self.redactor.value(json.loads(json.dumps(record, default=str)))
        line = json.dumps(clean, sort_keys=True, ensure_ascii=False) + "\n"
        with self._lock, self.path.open("a", encoding="utf-8") as handle:
            handle.write(line)
            handle.flush()
            os.fsync(handle.fileno())
