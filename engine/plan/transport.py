"""The LLM planner's I/O seam: send one prompt, get the raw reply or one ``LLMError``.

Transports (``engine.plan.gemini``, ``engine.plan.openai``) do no parsing, caching or
retrying: ``engine.plan.llm`` owns all of that within its own time budget.

    LLMError(RuntimeError)   .kind is one of:
      "timeout"       no answer within this attempt's timeout
      "connection"    the server could not be reached (refused, reset, DNS, TLS)
      "rate_limited"  HTTP 429; .retry_after when the server said how long to wait
      "http"          any other error status, or a body that is not the provider's protocol
      "refused"       the provider blocked the prompt or the model refused to answer
      "empty"         a well-formed reply with no text in it
"""

from __future__ import annotations

import email.utils
import math
import time
from dataclasses import dataclass
from typing import Any, Protocol

from engine.errors import LLMError, LLMErrorKind
from engine.redact import Redactor

MAX_MESSAGE_CHARS = 300  # error bodies can be whole HTML pages; the record needs a line


@dataclass(frozen=True, slots=True)
class LLMReply:
    """What the model said (unparsed), with the provider's accounting."""

    text: str
    input_tokens: int | None
    output_tokens: int | None
    finish_reason: str | None
    model_version: str | None


class LLMTransport(Protocol):
    """Sends one prompt to one model and returns the raw reply, or raises ``LLMError``."""

    provider: str  # "gemini" | "openai"
    model: str

    def complete(
        self, *, system: str, user: str, schema: dict[str, Any], timeout: float
    ) -> LLMReply:
        """One attempt, no retries, bounded by ``timeout`` seconds."""
        ...


def clean_message(text: str, *secrets: str) -> str:
    """Make server- or SDK-supplied text safe for an error message: no secrets, one short line."""
    text = Redactor(secrets).text(text)
    text = " ".join(text.split())
    if len(text) > MAX_MESSAGE_CHARS:
        text = text[: MAX_MESSAGE_CHARS - 3] + "..."
    return text


def transport_error(
    label: str,
    api_key: str,
    kind: LLMErrorKind,
    text: str,
    *,
    status: int | None = None,
    retry_after: float | None = None,
) -> LLMError:
    """An LLMError whose message names the provider and model and never shows the key."""
    message = clean_message(f"{label}: {text}", api_key)
    return LLMError(kind, message, status=status, retry_after=retry_after)


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After header (delta-seconds or HTTP-date), or None."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # RFC 9110 dates are GMT; a naive one is malformed
            return None
        seconds = when.timestamp() - (time.time() if now is None else now)
    if not math.isfinite(seconds):
        return None
    return max(0.0, seconds)
