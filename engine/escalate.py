"""Escalate: tell a human. The log notifier is the default; Slack, PagerDuty and webhooks
(engine/notify) plug in behind the same ``Notifier`` seam."""

from __future__ import annotations

import logging
from typing import Protocol

log = logging.getLogger("autosre.escalate")


class Notifier(Protocol):
    """Anything that can page or message a human about an incident."""

    def escalate(
        self,
        *,
        host: str,
        incident_id: int,
        reason: str,
        kind: str = "high_cpu",
        status: str = "escalated",
    ) -> None:
        """Hand over one escalation (``status``: escalated or failed); raise on failure so
        the caller can record it."""
        ...

    def resolved(
        self, *, host: str, incident_id: int, reason: str, kind: str = "high_cpu", status: str
    ) -> None:
        """The incident closed: resolve what its escalation opened (a PagerDuty incident)."""
        ...


class LogNotifier:
    """Writes escalations to the engine's log at WARNING."""

    def escalate(
        self,
        *,
        host: str,
        incident_id: int,
        reason: str,
        kind: str = "high_cpu",
        status: str = "escalated",
    ) -> None:
        """Log the escalation."""
        log.warning("ESCALATION incident %d on %s: %s", incident_id, host, reason)

    def resolved(
        self, *, host: str, incident_id: int, reason: str, kind: str = "high_cpu", status: str
    ) -> None:
        """Nothing to resolve: a log line opened nothing (the close is logged by the engine)."""
