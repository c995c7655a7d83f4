"""Decisions on the write side: each proposal with the policy's verdict over it, and later
how the run it started was verified.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from engine.record.events import Journal
from engine.store.models import Decision
from engine.timeutil import to_dt
from engine.types import Proposal, Verdict, Verification


class DecisionRecords:
    """Stores proposals (with the model call behind them), verdicts and verifications."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal
        # (host, action) -> the trust level in force, or None for no whitelisted action;
        # set by the engine from the policy its gate uses (engine/policy_reload.py).
        self.trust_of: Callable[[str, str], str | None] | None = None

    def _trust(self, host: str, proposal: Proposal, verdict: Verdict) -> str | None:
        if self.trust_of is None:
            return None
        return self.trust_of(host, verdict.action or proposal.action)

    def record(
        self, incident_id: int, host: str, proposal: Proposal, verdict: Verdict, at: float
    ) -> int:
        """Store a proposal (with its model call, if any) and the policy's verdict over it."""
        journal = self.journal
        call = proposal.call
        with journal.sessions() as session:
            decision = Decision(
                incident_id=incident_id,
                host=host,
                created_at=to_dt(at),
                planner=proposal.planner,
                action=proposal.action,
                confidence=proposal.confidence,
                rationale=journal.text(proposal.rationale),
                verdict=verdict.kind,
                verdict_action=verdict.action,
                rule=verdict.rule,
                reason=journal.text(verdict.reason),
                overridden=verdict.overridden,
                fallback=journal.optional_text(proposal.fallback),
                trust=self._trust(host, proposal, verdict),
            )
            if call is not None:
                decision.provider = call.provider
                decision.model = call.model
                decision.latency_ms = call.latency * 1000.0
                decision.attempts = call.attempts
                decision.input_tokens = call.input_tokens
                decision.output_tokens = call.output_tokens
                decision.prompt = journal.optional_text(call.prompt)
                decision.reply = journal.optional_text(call.reply)
                decision.call_error = journal.optional_text(call.error)
                decision.cached = call.cached
            session.add(decision)
            session.flush()
            fallback = f" (fallback: {proposal.fallback})" if proposal.fallback else ""
            message = (
                f"{proposal.planner} proposed {proposal.action} "
                f"({proposal.confidence:.2f}){fallback}; policy: {verdict.kind} - {verdict.reason}"
            )
            data: dict[str, Any] = {"decision_id": decision.id, "rule": verdict.rule}
            if decision.trust is not None:
                data["trust"] = decision.trust
            if call is not None:
                # Prompt and reply stay in the store: the audit line names the call only.
                data["call"] = {
                    "provider": call.provider,
                    "model": call.model,
                    "latency_ms": decision.latency_ms,
                    "cached": call.cached,
                }
            if proposal.fallback:
                data["fallback"] = proposal.fallback
            row = journal.add(
                session, at, "decided", message, host=host, incident_id=incident_id, data=data
            )
            journal.commit(session, [row])
            return decision.id

    def verified(self, decision_id: int, check: Verification) -> None:
        """Store a verification's result on the decision whose run it checked."""
        journal = self.journal
        outcome = {True: "recovered", False: "not_recovered", None: "unverified"}[check.recovered]
        with journal.sessions() as session:
            decision = session.get_one(Decision, decision_id)
            decision.outcome = outcome
            decision.outcome_at = to_dt(check.checked_at)
            row = journal.add(
                session,
                check.checked_at,
                "verified",
                check.reason,
                host=check.host,
                incident_id=decision.incident_id,
                run_id=decision.run_id,
                data={"recovered": check.recovered, "value": check.value},
            )
            journal.commit(session, [row])
