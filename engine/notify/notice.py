"""A notice: what one notification says, channel-neutral and free of secrets.

The outbox stores it as JSON (``payload``); each channel (engine/notify/channels.py)
turns it into its receiver's own format when delivering.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.incident.life import IncidentStatus
from engine.timeutil import iso, to_dt

TRIGGER = "trigger"
RESOLVE = "resolve"
# A failed remediation (a run that did not cure, a refused run) pages as critical; an
# escalation by the policy (ladder done, approval rejected) as an error; closing is info.
SEVERITY = {IncidentStatus.FAILED.value: "critical", IncidentStatus.ESCALATED.value: "error"}


def severity_of(status: str, event: str) -> str:
    """The PagerDuty severity a notice about an incident in ``status`` carries."""
    return "info" if event == RESOLVE else SEVERITY.get(status, "error")


def dedup_key(incident_id: int) -> str:
    """The stable key that ties a PagerDuty trigger to its resolve."""
    return f"autosre-{incident_id}"


@dataclass(frozen=True, slots=True)
class Notice:
    """One notification about one incident, before it is routed to channels."""

    event: str  # trigger | resolve
    incident_id: int
    host: str
    kind: str
    groups: tuple[str, ...]
    status: str  # the incident's status when the notice was written
    summary: str
    at: float

    @property
    def severity(self) -> str:
        """critical, error or info (see SEVERITY)."""
        return severity_of(self.status, self.event)

    def payload(self) -> dict[str, Any]:
        """The notice as stored in the outbox and sent to a generic webhook."""
        return {
            "source": "autosre",
            "event": self.event,
            "incident_id": self.incident_id,
            "dedup_key": dedup_key(self.incident_id),
            "host": self.host,
            "kind": self.kind,
            "groups": list(self.groups),
            "status": self.status,
            "severity": self.severity,
            "summary": self.summary,
            "at": iso(to_dt(self.at)),
        }
