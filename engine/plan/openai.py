"""OpenAI-compatible transport (OpenAI, Ollama, vLLM, llama.cpp server) via the openai client.

The request is ``POST {base_url}/chat/completions`` with the schema in
``response_format.json_schema`` (strict); the key travels as ``Authorization: Bearer``.
"""

from __future__ import annotations

from typing import Any

import openai
from openai.types.chat import ChatCompletion

from engine.errors import LLMError, LLMErrorKind
from engine.plan.transport import LLMReply, parse_retry_after, transport_error

SCHEMA_NAME = "proposal"


class OpenAITransport:
    """Sends one prompt to a chat-completions server; the SDK's own retries are off."""

    provider = "openai"

    def __init__(self, *, model: str, api_key: str, base_url: str | None = None) -> None:
        self.model = model
        self._api_key = api_key
        # max_retries=0: the planner retries within its own time budget.
        self._client = openai.OpenAI(api_key=api_key, base_url=base_url, max_retries=0)

    def complete(
        self, *, system: str, user: str, schema: dict[str, Any], timeout: float
    ) -> LLMReply:
        """Ask once for JSON matching ``schema``; raise ``LLMError`` on any failure."""
        try:
            completion = self._client.chat.completions.create(
                model=self.model,
                messages=[
                    {"role": "system", "content": system},
                    {"role": "user", "content": user},
                ],
                response_format={
                    "type": "json_schema",
                    "json_schema": {"name": SCHEMA_NAME, "schema": schema, "strict": True},
                },
                temperature=0,
                timeout=timeout,
            )
        except openai.APITimeoutError:  # before APIConnectionError: it is a subclass
            raise self._error("timeout", f"no reply within {timeout:g}s") from None
        except openai.APIConnectionError as exc:
            cause = exc.__cause__ or exc
            raise self._error("connection", f"{type(cause).__name__}: {cause}") from None
        except openai.APIStatusError as exc:
            raise self._status_error(exc) from None
        except openai.APIError as exc:  # a 2xx the SDK could not validate
            raise self._error("http", f"unreadable reply: {exc.message}") from None
        except ValueError as exc:  # a 2xx whose body is not JSON at all
            raise self._error("http", f"unreadable reply: {type(exc).__name__}: {exc}") from None
        if not isinstance(completion, ChatCompletion):
            raise self._error(
                "http", f"unreadable reply: {type(completion).__name__}, not a completion"
            )
        if not completion.choices:
            raise self._error("empty", "reply has no choices")
        return self._reply(completion)

    def close(self) -> None:
        """Release the HTTP connection pool."""
        self._client.close()

    def _reply(self, completion: ChatCompletion) -> LLMReply:
        choice = completion.choices[0]
        message = choice.message
        if message.refusal:
            raise self._error("refused", f"model refused: {message.refusal}")
        if choice.finish_reason == "content_filter":
            raise self._error("refused", "generation stopped by the content filter")
        text = message.content or ""
        if not text.strip():
            raise self._error("empty", f"reply has no text (finish reason {choice.finish_reason})")
        usage = completion.usage
        return LLMReply(
            text=text,
            input_tokens=usage.prompt_tokens if usage else None,
            output_tokens=usage.completion_tokens if usage else None,
            finish_reason=choice.finish_reason,
            model_version=completion.model or None,
        )

    def _status_error(self, exc: openai.APIStatusError) -> LLMError:
        status = exc.status_code
        retry_after = _retry_after(exc.response.headers)
        kind: LLMErrorKind = "rate_limited" if status == 429 else "http"
        # The SDK's message wraps the whole body; the server's own sentence reads better.
        detail = exc.body.get("message") if isinstance(exc.body, dict) else None
        text = f"HTTP {status}: {detail if isinstance(detail, str) else exc.message}"
        return self._error(kind, text, status=status, retry_after=retry_after)

    def _error(
        self,
        kind: LLMErrorKind,
        text: str,
        *,
        status: int | None = None,
        retry_after: float | None = None,
    ) -> LLMError:
        return transport_error(
            f"openai {self.model}",
            self._api_key,
            kind,
            text,
            status=status,
            retry_after=retry_after,
        )


def _retry_after(headers: Any) -> float | None:
    # OpenAI's own servers also send the finer-grained retry-after-ms; prefer it.
    millis = parse_retry_after(headers.get("retry-after-ms"))
    if millis is not None:
        return millis / 1000.0
    return parse_retry_after(headers.get("retry-after"))
