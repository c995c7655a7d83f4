"""The journal: how the write side stores timeline events and mirrors them to the audit log.

Every record module (incidents, decisions, runs, approvals) writes through it: one
transaction per recorded fact, each event mirrored to the JSONL audit log after its
commit. Free text and data bound for the store (messages, summaries, rationales,
prompts, replies, errors, notes) pass through ``text()`` / ``data()``, the one
redactor of the write side, so no caller needs to remember to redact.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from engine.record.audit import AuditLog
from engine.redact import Redactor
from engine.store.models import Event
from engine.timeutil import iso, to_dt


class Journal:
    """The store and the audit log, and how events are written to both."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        *,
        redactor: Redactor | None = None,
    ) -> None:
        self.sessions = sessions
        self.audit = audit
        self.redactor = redactor or Redactor()

    def text(self, value: str) -> str:
        """Free text as it may be stored: secrets redacted."""
        return self.redactor.text(value)

    def optional_text(self, value: str | None) -> str | None:
        """Like text(), for a column that may be empty."""
        return None if value is None else self.redactor.text(value)

    def data(self, value: dict[str, Any] | None) -> dict[str, Any]:
        """A JSON data dict as it may be stored: secrets and secret-named fields redacted."""
        clean: dict[str, Any] = self.redactor.value(value or {})
        return clean

    def add(
        self,
        session: Session,
        at: float,
        kind: str,
        message: str,
        *,
        host: str | None = None,
        incident_id: int | None = None,
        run_id: int | None = None,
        data: dict[str, Any] | None = None,
    ) -> Event:
        """Add one event to the session's transaction (redacted); commit() writes it."""
        row = Event(
            at=to_dt(at),
            kind=kind,
            host=host,
            incident_id=incident_id,
            run_id=run_id,
            message=self.text(message),
            data=self.data(data),
        )
        session.add(row)
        return row

    def commit(self, session: Session, events: Iterable[Event] = ()) -> None:
        """Commit the transaction, then append its events to the audit log."""
        session.commit()
        for row in events:
            self.audit.write(
                {
                    "at": iso(row.at),
                    "event_id": row.id,
                    "kind": row.kind,
                    "host": row.host,
                    "incident_id": row.incident_id,
                    "run_id": row.run_id,
                    "message": row.message,
                    "data": row.data,
                }
            )

    def event(self, at: float, kind: str, message: str, **refs: Any) -> None:
        """Record a free-standing timeline event (and its audit line)."""
        with self.sessions() as session:
            row = self.add(session, at, kind, message, **refs)
            self.commit(session, [row])
