"""The LLM planner: a model proposes, within a time budget; the rules planner stands in
whenever the model cannot be used, and the record says why.

At most one model call per decision point: replies are cached by the situation
(host, incident, what was tried, the host's status), so ticks that ask again get the
same answer without a call. Retries back off inside the one timeout budget.
"""

from __future__ import annotations

import logging
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace

from engine.errors import LLMError, ReplyError
from engine.plan.prompt import SYSTEM, build_user_prompt, parse_reply, reply_schema
from engine.plan.situation import Planner, Situation
from engine.plan.transport import LLMReply, LLMTransport
from engine.redact import Redactor
from engine.signals import signal_kind
from engine.types import ESCALATE_ACTION, PlannerCall, Proposal

log = logging.getLogger("autosre.planner")
RETRYABLE = frozenset({"http", "rate_limited", "connection", "empty"})
CacheKey = tuple[str, int, tuple[str, ...], str]


class LLMPlanner:
    """Asks a model through an LLMTransport; falls back to another planner on any failure."""

    def __init__(
        self,
        *,
        transport: LLMTransport,
        fallback: Planner,
        timeout: float,
        thresholds: Mapping[str, Mapping[str, float]],
        secrets: Iterable[str] = (),
        redactor: Redactor | None = None,
        max_attempts: int = 3,
        backoff: float = 0.25,
        cache_size: int = 512,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.transport = transport
        self.fallback = fallback
        self.name = transport.provider
        self.timeout = timeout
        self.thresholds = {kind: dict(numbers) for kind, numbers in thresholds.items()}
        # Everything sent to or kept from a model passes through it.
        self.redactor = (redactor or Redactor()).with_secrets(secrets)
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.clock = clock
        self.sleep = sleep
        self._cache: OrderedDict[CacheKey, Proposal] = OrderedDict()
        self._cache_size = cache_size

    def quick(self, situation: Situation) -> Proposal | None:
        """The answer when no model needs asking (deterministic outcome, or cached), else None."""
        rules = self.fallback.propose(situation)
        if (
            rules.action == ESCALATE_ACTION
            or situation.state.status is not signal_kind(situation.kind).status
        ):
            # Deterministic outcomes (ladder exhausted, no data) never wait on a model.
            return rules
        cached = self._cache.get(self._key(situation))
        if cached is None:
            return None
        self._cache.move_to_end(self._key(situation))
        call = replace(cached.call, cached=True, latency=0.0) if cached.call else None
        return replace(cached, call=call)

    @staticmethod
    def _key(situation: Situation) -> CacheKey:
        return (
            situation.host,
            situation.incident_id,
            situation.tried,
            situation.state.status.value,
        )

    def propose(self, situation: Situation) -> Proposal:
        """A model proposal, or the fallback's with the reason the model was not used."""
        known = self.quick(situation)
        if known is not None:
            return known
        rules = self.fallback.propose(situation)
        key = self._key(situation)
        proposal = self._ask(situation, rules)
        self._cache[key] = proposal
        if len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return proposal

    def _ask(self, situation: Situation, rules: Proposal) -> Proposal:
        user = build_user_prompt(
            situation,
            labels=situation.labels,
            samples=situation.samples,
            thresholds=self.thresholds.get(situation.kind, {}),
        )
        user = self.redactor.text(user)
        schema = reply_schema(situation.actions)
        started = self.clock()
        deadline = started + self.timeout
        attempts = 0
        reply: LLMReply | None = None
        error: str | None = None
        while attempts < self.max_attempts:
            remaining = deadline - self.clock()
            if remaining <= 0.05:
                error = error or f"timed out after {self.timeout:g}s"
                break
            attempts += 1
            try:
                reply = self.transport.complete(
                    system=SYSTEM, user=user, schema=schema, timeout=remaining
                )
                error = None
                break
            except LLMError as exc:
                error = self.redactor.text(f"{exc.kind}: {exc}")
                wait = (
                    exc.retry_after
                    if exc.retry_after is not None
                    else (self.backoff * 2 ** (attempts - 1))
                )
                if exc.kind not in RETRYABLE or self.clock() + wait >= deadline - 0.05:
                    break
                self.sleep(wait)
        latency = self.clock() - started
        text = self.redactor.text(reply.text) if reply is not None else None
        call = PlannerCall(
            provider=self.transport.provider,
            model=self.transport.model,
            latency=latency,
            attempts=attempts,
            prompt=f"{SYSTEM}\n\n{user}",
            reply=text,
            input_tokens=reply.input_tokens if reply else None,
            output_tokens=reply.output_tokens if reply else None,
            error=error,
        )
        if reply is None:
            return self._fall_back(rules, call, error or "no reply")
        try:
            parsed = parse_reply(reply.text, situation.actions)
        except ReplyError as exc:
            return self._fall_back(rules, replace(call, error=str(exc)), str(exc))
        return Proposal(
            parsed.action,
            parsed.confidence,
            self.redactor.text(parsed.rationale),
            planner=self.name,
            call=call,
        )

    def _fall_back(self, rules: Proposal, call: PlannerCall, why: str) -> Proposal:
        log.warning("%s planner not used (%s); the rules planner decides", self.name, why)
        return replace(rules, call=call, fallback=f"{self.name} unusable: {why}")
