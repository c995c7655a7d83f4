"""Escalate: tell a human. The log notifier is the default; Slack, PagerDuty and
webhooks plug in behind the same ``Notifier`` seam."""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("autosre.escalate")


class Notifier(Protocol):
    """Anything that can page or message a human about an incident."""

    def escalate(self, *, host: str, incident_id: int, reason: str) -> None:
        """Deliver one escalation; raise on failure so the caller can record it."""
        ...


class LogNotifier:
    """Writes escalations to the engine's log at WARNING."""

    def escalate(self, *, host: str, incident_id: int, reason: str) -> None:
        """Log the escalation."""
        log.warning("ESCALATION incident %d on %s: %s", incident_id, host, reason)
