"""Every table of the store, so that ``Base.metadata`` is whole wherever it is compared or
created: the tables live in several modules (models.py is at its size limit), and a module
that is never imported leaves its tables out of the metadata."""

from __future__ import annotations

from engine.store import accounts, alert_events, leases, outbox
from engine.store.models import Base

MODULES = (accounts, alert_events, leases, outbox)  # imported for their tables
metadata = Base.metadata

__all__ = ["MODULES", "Base", "metadata"]
