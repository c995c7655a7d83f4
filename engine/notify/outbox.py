"""The outbox notifier: the ``Notifier`` the engine calls when channels are configured.

An escalation or a close only writes rows to the store (routed by the policy), then
wakes the delivery worker; no network call happens on the engine's tick. The log line
of the default notifier is kept, so the engine's log reads as before.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping

from engine.escalate import LogNotifier
from engine.notify.deliver import DeliveryWorker
from engine.notify.notice import RESOLVE, TRIGGER, Notice
from engine.notify.route import channels_for
from engine.policy.notify_schema import Notifications
from engine.record.notifications import NotificationRecords
from engine.redact import Redactor


class OutboxNotifier:
    """Queues notices per routed channel; its worker delivers them."""

    def __init__(
        self,
        *,
        records: NotificationRecords,
        notifications: Notifications,
        groups: Mapping[str, tuple[str, ...]],
        redactor: Redactor,
        worker: DeliveryWorker | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.records = records
        self.notifications = notifications
        self.groups = groups
        self.redactor = redactor
        self.worker = worker
        self.clock = clock
        self.log = LogNotifier()

    def escalate(
        self,
        *,
        host: str,
        incident_id: int,
        reason: str,
        kind: str = "high_cpu",
        status: str = "escalated",
    ) -> None:
        """Log the escalation and queue its trigger on every channel its route allows."""
        self.log.escalate(host=host, incident_id=incident_id, reason=reason)
        notice = self._notice(TRIGGER, host, incident_id, reason, kind, status)
        self._queue(notice, channels_for(self.notifications, notice))

    def resolved(
        self, *, host: str, incident_id: int, reason: str, kind: str = "high_cpu", status: str
    ) -> None:
        """Queue a resolve where the incident's trigger was queued (nowhere else)."""
        triggered = self.records.triggered(incident_id)
        if not triggered:
            return
        notice = self._notice(RESOLVE, host, incident_id, reason, kind, status)
        self._queue(notice, channels_for(self.notifications, notice, triggered=triggered))

    def close(self) -> None:
        """Stop the worker (Engine.shutdown calls this); pending rows stay for the next run."""
        if self.worker is not None:
            self.worker.stop()

    def _notice(
        self, event: str, host: str, incident_id: int, reason: str, kind: str, status: str
    ) -> Notice:
        return Notice(
            event=event,
            incident_id=incident_id,
            host=host,
            kind=kind,
            groups=self.groups.get(host, ()),
            status=status,
            summary=self.redactor.text(reason),
            at=self.clock(),
        )

    def _queue(self, notice: Notice, channels: list[str]) -> None:
        if channels and self.records.queue(notice, channels) and self.worker is not None:
            self.worker.wake()
