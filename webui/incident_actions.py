"""What people do on an incident, shared by its page (webui/incidents.py) and the JSON API
(webui/api.py): acknowledge, assign, resolve with a note. The store's side and every check
of the note are engine/record/handling.py's; this holds the API's bodies and reply, and the
page's view of who is handling the incident.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from engine.read.users import list_users
from engine.record.handling import MAX_NOTE, Handling, handling
from webui.db import get_sessions

Note = Annotated[str, Field(max_length=MAX_NOTE)]


class AcknowledgeBody(BaseModel):
    """The optional body of acknowledge."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    note: Note | None = Field(default=None, description="what you are doing about it")


class AssignBody(BaseModel):
    """The body of assign: an enabled web user's name."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    assignee: Annotated[str, Field(min_length=1, max_length=64)] = Field(
        description="the user who takes the incident"
    )


class ResolveBody(BaseModel):
    """The body of resolve: why it is over (required)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    note: Note = Field(description="why the incident is over, kept in its timeline")


class IncidentHandling(BaseModel):
    """Who is handling an incident, after the action."""

    incident_id: int
    status: str
    closed_at: datetime | None
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    assigned_to: str | None
    resolved_by: str | None

    @classmethod
    def of(cls, marks: Handling) -> IncidentHandling:
        """The reply for the store's handling marks (the same fields, by name)."""
        return cls.model_validate(marks, from_attributes=True)


def page_view(incident: dict[str, Any]) -> dict[str, Any]:
    """What the incident page's action card needs: the marks, the users one may assign to,
    and the approval waiting for a decision (if any)."""
    marks = handling(get_sessions(), incident["id"])
    pending = [a for a in incident["approvals"] if a["status"] == "pending"]
    return {
        "handling": None if marks is None else IncidentHandling.of(marks).model_dump(mode="json"),
        "assignees": [u.name for u in list_users(get_sessions()) if not u.disabled],
        "pending_approval": pending[-1] if pending else None,
        "max_note": MAX_NOTE,
    }
