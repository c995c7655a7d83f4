"""Gemini transport: one ``generateContent`` call through google-genai, native JSON output.

The request is ``POST {base_url}/{api_version}/models/{model}:generateContent`` with the
schema in ``generationConfig.responseJsonSchema``; the key travels in ``x-goog-api-key``.
"""

from __future__ import annotations

import enum
import math
from typing import Any

import httpx2
from google import genai
from google.genai import errors, types

from engine.errors import LLMError, LLMErrorKind
from engine.plan.transport import LLMReply, parse_retry_after, transport_error

# Pinned, so GOOGLE_GENAI_API_VERSION in the environment cannot silently move the
# endpoint. "v1" is the SDK's default; "-latest" aliases and some previews need "v1beta".
DEFAULT_API_VERSION = "v1"

# Candidate finish reasons meaning "the model would not answer this", not "it ran out".
REFUSAL_FINISH_REASONS = frozenset(
    {
        "SAFETY",
        "RECITATION",
        "LANGUAGE",
        "BLOCKLIST",
        "PROHIBITED_CONTENT",
        "SPII",
        "IMAGE_SAFETY",
        "IMAGE_PROHIBITED_CONTENT",
        "IMAGE_RECITATION",
    }
)
RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"


class GeminiTransport:
    """Sends one prompt to a Gemini model; the SDK's own retries are off."""

    provider = "gemini"

    def __init__(
        self,
        *,
        model: str,
        api_key: str,
        base_url: str | None = None,
        api_version: str = DEFAULT_API_VERSION,
    ) -> None:
        self.model = model
        self._api_key = api_key
        self._client = genai.Client(
            vertexai=False,  # GOOGLE_GENAI_USE_VERTEXAI must not reroute an API-key client
            api_key=api_key,
            http_options=types.HttpOptions(
                base_url=base_url,
                api_version=api_version,
                # attempts=1 is "no retries"; the planner retries within its own budget.
                retry_options=types.HttpRetryOptions(attempts=1),
            ),
        )

    def complete(
        self, *, system: str, user: str, schema: dict[str, Any], timeout: float
    ) -> LLMReply:
        """Ask once for JSON matching ``schema``; raise ``LLMError`` on any failure."""
        config = types.GenerateContentConfig(
            system_instruction=system,
            response_mime_type="application/json",
            response_json_schema=schema,
            temperature=0.0,
            # One call must be one request: no tool loop, no continuation hops.
            automatic_function_calling=types.AutomaticFunctionCallingConfig(disable=True),
            automatic_continuation=False,
            http_options=types.HttpOptions(timeout=_millis(timeout)),
        )
        try:
            response = self._client.models.generate_content(
                model=self.model, contents=user, config=config
            )
        except errors.APIError as exc:
            raise self._status_error(exc) from None
        except httpx2.TimeoutException:
            raise self._error("timeout", f"no reply within {timeout:g}s") from None
        except httpx2.TransportError as exc:
            raise self._error("connection", f"{type(exc).__name__}: {exc}") from None
        except ValueError as exc:  # a 200 whose body is not a GenerateContentResponse
            raise self._error("http", f"unreadable reply: {type(exc).__name__}: {exc}") from None
        return self._reply(response)

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._client.close()

    def _reply(self, response: types.GenerateContentResponse) -> LLMReply:
        feedback = response.prompt_feedback
        if feedback is not None and feedback.block_reason is not None:
            why = _name(feedback.block_reason)
            detail = f": {feedback.block_reason_message}" if feedback.block_reason_message else ""
            raise self._error("refused", f"prompt blocked ({why}){detail}")
        if not response.candidates:
            raise self._error("refused", "reply has no candidates")
        candidate = response.candidates[0]
        finish = _name(candidate.finish_reason)
        if finish in REFUSAL_FINISH_REASONS:
            raise self._error("refused", f"generation stopped: finish reason {finish}")
        parts = candidate.content.parts if candidate.content and candidate.content.parts else []
        # Thought summaries are not the answer; only the visible text parts are.
        text = "".join(part.text for part in parts if part.text and not part.thought)
        if not text.strip():
            raise self._error("empty", f"reply has no text (finish reason {finish})")
        usage = response.usage_metadata
        output_tokens = None
        if usage is not None and usage.candidates_token_count is not None:
            # Thinking tokens are billed as output, so they count against the budget too.
            output_tokens = usage.candidates_token_count + (usage.thoughts_token_count or 0)
        return LLMReply(
            text=text,
            input_tokens=usage.prompt_token_count if usage else None,
            output_tokens=output_tokens,
            finish_reason=finish,
            model_version=response.model_version,
        )

    def _status_error(self, exc: errors.APIError) -> LLMError:
        headers = getattr(exc.response, "headers", None) or {}
        retry_after = parse_retry_after(headers.get("retry-after"))
        if retry_after is None:
            retry_after = _retry_info_delay(exc.details)
        text = f"HTTP {exc.code} {exc.status or ''}: {exc.message or ''}"
        kind: LLMErrorKind = "rate_limited" if exc.code == 429 else "http"
        return self._error(kind, text, status=exc.code, retry_after=retry_after)

    def _error(
        self,
        kind: LLMErrorKind,
        text: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> LLMError:
        return transport_error(
            f"gemini {self.model}",
            self._api_key,
            kind,
            text,
            status=status,
            retry_after=retry_after,
        )


def _millis(timeout: float) -> int:
    # The SDK reads 0 ms as "no timeout", so never round a short budget down to it.
    return max(1, math.ceil(timeout * 1000))


def _name(value: object) -> str | None:
    if value is None:
        return None
    return str(value.value) if isinstance(value, enum.Enum) else str(value)


def _retry_info_delay(details: Any) -> float | None:
    """The wait Google's RetryInfo error detail asks for ("2s", "0.5s"), if any."""
    error = details.get("error") if isinstance(details, dict) else None
    entries = error.get("details") if isinstance(error, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("@type") == RETRY_INFO_TYPE:
            delay = entry.get("retryDelay")
            if isinstance(delay, str) and delay.endswith("s"):
                return parse_retry_after(delay[:-1])
    return None
