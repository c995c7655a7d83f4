"""What one incident's page shows, for the page and for its live fragment (webui/incidents.py):
the incident (redacted), its timeline rows, runs with their verification, the rungs skipped
and why, notifications, and who is handling it.
"""

from __future__ import annotations

from typing import Any

from flask import abort

from engine.read.incidents import incident_detail
from engine.read.notifications import incident_notifications
from engine.timeutil import iso
from webui.artifacts import RUNNING
from webui.db import get_sessions
from webui.incident_actions import page_view
from webui.incident_timeline import run_rows, skipped, timeline, total, verifications
from webui.redaction import redact_strings

STAT_COLUMNS = ("ok", "changed", "failures", "unreachable", "skipped", "rescued", "ignored")
POLL_EVERY = 5  # seconds between refreshes of an open incident's page


def get_incident(incident_id: int) -> dict[str, Any]:
    """The incident with its decisions, approvals, runs and timeline, or a 404 page."""
    detail = incident_detail(get_sessions(), incident_id)
    if detail is None:
        abort(404, description=f"There is no incident {incident_id}.")
    return detail.model_dump(mode="json")


def _fields(notice: Any) -> dict[str, Any]:
    """A notice's fields as the template reads them (the outbox holds no secrets)."""
    return {f: getattr(notice, f) for f in ("channel", "event", "status", "attempts", "last_error")}


def story_view(incident_id: int) -> dict[str, Any]:
    """Everything the page's live parts render: the same for the page and its fragment."""
    # A second line of redaction: the recorder redacts first.
    incident = redact_strings(get_incident(incident_id))
    notices = [
        {**_fields(n), "at": iso(n.created_at), "sent": iso(n.sent_at)}
        | {"due": iso(n.next_attempt_at)}
        for n in incident_notifications(get_sessions(), incident_id)
    ]
    verified = verifications(get_sessions(), incident_id)
    return {
        "incident": incident,
        "rows": timeline(incident),
        "total": total(incident),
        "run_rows": run_rows(incident, verified),
        "skipped": skipped(incident),
        "running": {run["id"]: run["status"] in RUNNING for run in incident["runs"]},
        "stat_columns": STAT_COLUMNS,
        "notifications": redact_strings(notices),
        "poll_every": POLL_EVERY,
    }


def page_context(incident_id: int) -> dict[str, Any]:
    """The whole page's context: the live parts and the action card."""
    story = story_view(incident_id)
    return story | page_view(story["incident"])
