"""The recorder: the write side of the store, made of one part per thing recorded.

Every transition is committed before the side effect it announces starts and again
after it ends, so a crash never loses an incident and never hides a run. The parts
share one journal (the store, the audit log, the redactor); the engine's components
(engine/components.py) make the one recorder of a process.
"""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker

from engine.record.approvals import ApprovalRecords
from engine.record.audit import AuditLog
from engine.record.decisions import DecisionRecords
from engine.record.events import Journal
from engine.record.handling import HandlingRecords
from engine.record.incidents import IncidentRecords
from engine.record.maintenance import MaintenanceRecords
from engine.record.memory import EngineMemory
from engine.record.runs import RunRecords
from engine.record.staged_runs import StagedRunRecords
from engine.redact import Redactor


class Recorder:
    """Incidents, decisions, runs, approvals and free events; and the engine's own reads."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        audit: AuditLog,
        *,
        redactor: Redactor | None = None,
    ) -> None:
        self.journal = Journal(sessions, audit, redactor=redactor)
        self.incidents = IncidentRecords(self.journal)
        self.decisions = DecisionRecords(self.journal)
        self.runs = RunRecords(self.journal)
        self.staged = StagedRunRecords(self.journal)
        self.approvals = ApprovalRecords(self.journal)
        self.handling = HandlingRecords(self.journal)  # what people do: ack, assign, resolve
        self.maintenance = MaintenanceRecords(self.journal)
        self.memory = EngineMemory(sessions)

    @property
    def sessions(self) -> sessionmaker[Session]:
        """The store's session factory."""
        return self.journal.sessions
