"""One Prometheus server's outage, told once however many sources query it."""

from __future__ import annotations

import threading


class Outage:
    """One server's outage, shared by the sources that query it (one per signal kind), so
    that it is told once, not once per kind."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._since: float | None = None

    def begin(self, now: float) -> bool:
        """Note a failure; True only for the first one of an outage."""
        with self._lock:
            if self._since is not None:
                return False
            self._since = now
            return True

    def end(self, now: float) -> float | None:
        """Note an answer; the outage's length if one just ended, else None."""
        with self._lock:
            since, self._since = self._since, None
        return None if since is None else now - since
