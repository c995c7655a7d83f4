"""The model check: one tiny, bounded request through the configured real client."""

from __future__ import annotations

import time

from engine.doctor.report import Finding, fail, ok, skip
from engine.errors import LLMError
from engine.plan.transport import LLMTransport

NAME = "model"
SYSTEM = "You are a health check. Answer with the JSON object the schema asks for."
USER = 'Reply {"ok": true}.'
SCHEMA = {
    "type": "object",
    "properties": {"ok": {"type": "boolean"}},
    "required": ["ok"],
    "additionalProperties": False,
}


def check_model(transport: LLMTransport | None, *, timeout: float) -> list[Finding]:
    """ok when the model replies at all within ``timeout``; skip when none is configured."""
    if transport is None:
        return [skip(NAME, "not configured (AUTOSRE_PLANNER=rules)")]
    label = f"{transport.provider} {transport.model}"
    started = time.monotonic()
    try:
        reply = transport.complete(system=SYSTEM, user=USER, schema=SCHEMA, timeout=timeout)
    except LLMError as exc:  # names provider and model; cleaned of the key by the transport
        return [fail(NAME, f"{exc} ({exc.kind})")]
    took = time.monotonic() - started
    if not reply.text.strip():
        return [fail(NAME, f"{label}: an empty reply ({reply.finish_reason or 'no reason'})")]
    return [ok(NAME, f"{label} answered in {took:.1f}s")]
