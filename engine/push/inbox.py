"""The engine's side of pushed alerts: each tick, the new alert events become notes and polls.

An alert is a hint, never proof (safety rule 3: the engine acts only on its own fresh
data). So a firing alert never opens an incident and never runs anything:

- its host has an incident of its kind: the alert joins it (a timeline note);
- it has none: the engine polls at once and keeps the alert pending; when its own
  evaluation opens the incident, the alert is linked to it (a note); if the engine's data
  does not show the problem within ``alerts.confirm_within``, the alert is recorded as not
  confirmed, and nothing runs.

A resolved alert notes on the incident that verification decides, and asks for a poll; it
never closes anything. Alertmanager's re-sends are one event each (engine/record/
alert_events.py), so nothing is noted twice.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping

from engine.incident.life import Track
from engine.policy.schema import Policy
from engine.push.payload import escaped
from engine.record.alert_events import (
    DROPPED,
    HINTED,
    JOINED,
    LINKED,
    NEW,
    NO_INCIDENT,
    PENDING,
    UNCONFIRMED,
    AlertEventRecords,
    OpenEvent,
)
from engine.record.events import Journal
from engine.timeutil import to_ts

log = logging.getLogger("autosre.engine")
BATCH = 200  # events taken per tick: a flood waits for later ticks, detection does not
ASAP = 0.1  # seconds: how soon the poll an alert asks for comes (the loop's MIN_POLL)


class Inbox:
    """Takes the open alert events each tick and moves each on, as the module says."""

    def __init__(
        self, records: AlertEventRecords, *, watched: Collection[str], confirm_within: float
    ) -> None:
        self.records = records
        self.watched = frozenset(watched)
        self.confirm_within = confirm_within

    @classmethod
    def of(cls, journal: Journal, policy: Policy) -> Inbox:
        """The inbox of an engine watching the policy's kinds, writing through its journal."""
        records = AlertEventRecords(journal)
        return cls(records, watched=policy.signals, confirm_within=policy.alerts.confirm_within)

    def take(
        self,
        now: float,
        tracks: Mapping[str, Track],
        due: float | None,
        poll: float,
        hosts: Collection[str] | None = None,
    ) -> tuple[float | None, float]:
        """Move the open events on (of ``hosts`` only, when given: another replica's hosts'
        events are its own); the tick's (due, poll), sooner when an alert asks."""
        asks = False
        events = self.records.open_events(limit=BATCH)
        if hosts is not None:
            events = [e for e in events if e.host in hosts or e.kind not in self.watched]
        # A firing alert followed by its own resolve was over before the data showed it.
        resolved = {e.fingerprint: e.id for e in events if e.status == "resolved"}
        for event in events:
            if event.kind not in self.watched:
                self.records.move(event, DROPPED, now, reason=f"{event.kind} is not watched")
            elif event.status == "resolved":
                asks |= self._resolved(event, tracks.get(event.host), now)
            elif resolved.get(event.fingerprint, 0) > event.id and event.host not in tracks:
                reason = "resolved by Alertmanager before the engine's metrics showed it"
                self.records.move(event, UNCONFIRMED, now, reason=reason)
            else:
                asks |= self._firing(event, tracks.get(event.host), now)
        if asks:
            due = now if due is None else min(due, now)
            poll = min(poll, ASAP)
        return due, poll

    def _firing(self, event: OpenEvent, track: Track | None, now: float) -> bool:
        """Join or link the incident of the alert's host and kind, or wait for the data;
        True when a poll is wanted now."""
        name = escaped(event.alertname)
        if track is not None and track.kind == event.kind:
            outcome = JOINED if event.outcome == NEW else LINKED
            waited = now - to_ts(event.received_at)
            note = f"Alertmanager: {name} firing" + (
                f" (confirmed by the engine's metrics {waited:.0f}s after it came)"
                if outcome == LINKED
                else ""
            )
            if self.records.move(event, outcome, now, incident_id=track.incident_id, note=note):
                log.info(
                    "%s: alert %s %s incident %d", event.host, name, outcome, track.incident_id
                )
            return False
        if event.outcome == NEW:
            # No incident yet: the engine must see the problem in its own data first.
            self.records.move(event, PENDING, now, confirm_by=now + self.confirm_within)
            log.info("%s: alert %s firing, polling to confirm", event.host, name)
            return True
        if event.confirm_by is not None and to_ts(event.confirm_by) <= now:
            reason = (
                f"not confirmed by the engine's metrics within {self.confirm_within:g}s: "
                "nothing was done"
            )
            self.records.move(event, UNCONFIRMED, now, reason=reason)
            log.info("%s: alert %s %s", event.host, name, reason)
        return False

    def _resolved(self, event: OpenEvent, track: Track | None, now: float) -> bool:
        """A hint for verification on the incident, never a close; True: poll now."""
        if track is None or track.kind != event.kind:
            self.records.move(event, NO_INCIDENT, now, reason="no open incident of its kind")
            return False
        note = f"Alertmanager says {escaped(event.alertname)} resolved; verification decides"
        self.records.move(event, HINTED, now, incident_id=track.incident_id, note=note)
        return True
