"""The "resolved" notice of an incident a person closed (web UI, API or CLI).

The engine sends the resolve of an incident it closes itself; one closed by a person is
closed in another process, maybe while no engine runs, so the process that closed it
queues the resolve in the store's outbox, on the channels where the incident's trigger
was queued (as the engine does). An engine's delivery worker sends it at its next poll.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from sqlalchemy.exc import SQLAlchemyError

from engine.errors import StoreError
from engine.notify.notice import RESOLVE, Notice
from engine.notify.route import channels_for
from engine.policy.notify_schema import Notifications
from engine.record.notifications import NotificationRecords
from engine.redact import Redactor

log = logging.getLogger(__name__)


class PersonResolveNotices:
    """Queues the resolve of an incident closed by a person; never raises (the close stands)."""

    def __init__(
        self,
        *,
        records: NotificationRecords,
        notifications: Notifications,
        groups: Mapping[str, tuple[str, ...]],
        redactor: Redactor,
    ) -> None:
        self.records = records
        self.notifications = notifications
        self.groups = groups
        self.redactor = redactor

    def __call__(
        self, *, incident_id: int, host: str, kind: str, status: str, summary: str, at: float
    ) -> list[str]:
        """Queue the resolve where the trigger went; the channels queued on."""
        if not self.notifications.channels:
            return []
        notice = Notice(
            event=RESOLVE,
            incident_id=incident_id,
            host=host,
            kind=kind,
            groups=self.groups.get(host, ()),
            status=status,
            summary=self.redactor.text(summary),
            at=at,
        )
        try:
            triggered = self.records.triggered(incident_id)
            channels = channels_for(self.notifications, notice, triggered=triggered)
            return self.records.queue(notice, channels) if channels else []
        except (StoreError, SQLAlchemyError) as exc:
            # The incident is closed (committed before this): say that its notice is missing.
            log.error(
                "incident %s was resolved, but its resolve notice was not queued: %s",
                incident_id,
                exc,
            )
            return []
