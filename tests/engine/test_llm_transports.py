"""The Gemini and OpenAI transports, through the real SDKs, against fake servers on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import Protocol

import pytest

from engine.errors import LLMError
from engine.plan.gemini import GeminiTransport
from engine.plan.openai import OpenAITransport
from engine.plan.transport import LLMReply, clean_message, parse_retry_after
from tests.fixtures.fake_llm import FakeGemini, FakeLLM, FakeOpenAI, Refusal, Reply, Status

SYSTEM = "You are AutoSRE's planner. Answer with one JSON object."
USER = "Host web-1 is HIGH_CPU (97% for 60s). Whitelisted actions: restart_nginx, rollback."
SCHEMA = {
    "type": "object",
    "properties": {
        "action": {"type": "string", "enum": ["restart_nginx", "rollback", "escalate"]},
        "confidence": {"type": "number"},
        "rationale": {"type": "string"},
    },
    "required": ["action", "confidence", "rationale"],
    "additionalProperties": False,
}
TIMEOUT = 5.0  # for calls expected to succeed: generous, but every wait is bounded


class ClosableTransport(Protocol):
    """An LLMTransport the test owns and must close."""

    provider: str
    model: str

    def complete(
        self, *, system: str, user: str, schema: dict[str, object], timeout: float
    ) -> LLMReply: ...

    def close(self) -> None: ...


def connect(
    fake: FakeLLM, *, api_key: str | None = None, url: str | None = None
) -> ClosableTransport:
    """The transport for a fake's provider, pointed at it."""
    key = fake.api_key if api_key is None else api_key
    base_url = fake.url if url is None else url
    if isinstance(fake, FakeGemini):
        return GeminiTransport(model=fake.model, api_key=key, base_url=base_url)
    return OpenAITransport(model=fake.model, api_key=key, base_url=base_url)


def ask(transport: ClosableTransport, timeout: float = TIMEOUT) -> LLMReply:
    """One complete() with the test prompt."""
    return transport.complete(system=SYSTEM, user=USER, schema=SCHEMA, timeout=timeout)


def fail(transport: ClosableTransport, timeout: float = TIMEOUT) -> LLMError:
    """One complete() that must raise LLMError; returns it."""
    with pytest.raises(LLMError) as caught:
        ask(transport, timeout)
    return caught.value


@pytest.fixture(params=["gemini", "openai"])
def fake(request: pytest.FixtureRequest) -> FakeLLM:
    """Each provider's fake in turn."""
    served: FakeLLM = request.getfixturevalue(f"fake_{request.param}")
    return served


@pytest.fixture
def transport(fake: FakeLLM) -> Iterator[ClosableTransport]:
    """The provider's transport pointed at its fake, closed afterwards."""
    client = connect(fake)
    yield client
    client.close()


def closed_port_url(suffix: str) -> str:
    """A 127.0.0.1 URL where nothing listens (the port was free a moment ago)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{suffix}"


# --- replies ---------------------------------------------------------------------------


def test_good_reply_comes_back_as_text_with_token_counts(
    fake: FakeLLM, transport: ClosableTransport
) -> None:
    text = '{"action": "rollback", "confidence": 0.7, "rationale": "restart failed twice"}'
    fake.script(Reply(text, input_tokens=321, output_tokens=45))

    reply = ask(transport)

    assert reply.text == text
    assert (reply.input_tokens, reply.output_tokens) == (321, 45)
    assert reply.finish_reason in {"STOP", "stop"}
    assert reply.model_version == fake.model
    assert transport.provider == fake.provider
    assert len(fake.requests) == 1


def test_gemini_request_carries_prompt_and_schema_natively(fake_gemini: FakeGemini) -> None:
    transport = connect(fake_gemini)
    try:
        ask(transport)
    finally:
        transport.close()

    (request,) = fake_gemini.requests
    assert request.path == f"/v1/models/{fake_gemini.model}:generateContent"
    body = request.body
    assert body["systemInstruction"]["parts"] == [{"text": SYSTEM}]
    assert body["contents"] == [{"role": "user", "parts": [{"text": USER}]}]
    config = body["generationConfig"]
    assert config["responseMimeType"] == "application/json"
    assert config["responseJsonSchema"] == SCHEMA
    assert config["temperature"] == 0
    assert "tools" not in body


def test_gemini_api_version_can_be_pinned_to_v1beta(fake_gemini: FakeGemini) -> None:
    transport = GeminiTransport(
        model=fake_gemini.model,
        api_key=fake_gemini.api_key,
        base_url=fake_gemini.url,
        api_version="v1beta",
    )
    try:
        ask(transport)
    finally:
        transport.close()

    assert fake_gemini.requests[0].path == f"/v1beta/models/{fake_gemini.model}:generateContent"


def test_openai_request_carries_prompt_and_schema_natively(fake_openai: FakeOpenAI) -> None:
    transport = connect(fake_openai)
    try:
        ask(transport)
    finally:
        transport.close()

    (request,) = fake_openai.requests
    assert request.path == "/v1/chat/completions"
    body = request.body
    assert body["model"] == fake_openai.model
    assert body["messages"] == [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": USER},
    ]
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "proposal", "schema": SCHEMA, "strict": True},
    }
    assert body["temperature"] == 0
    assert not body.get("stream")


def test_api_key_travels_only_in_the_auth_header(
    fake: FakeLLM, transport: ClosableTransport
) -> None:
    ask(transport)

    (request,) = fake.requests
    assert fake.api_key not in request.path  # Gemini once took ?key=; it must not leak to logs
    assert fake.api_key not in json.dumps(request.body)
    carrying = {name for name, value in request.headers.items() if fake.api_key in value}
    assert carrying == ({"x-goog-api-key"} if fake.provider == "gemini" else {"authorization"})


# --- failures --------------------------------------------------------------------------


def test_server_error_is_http_after_exactly_one_request(
    fake: FakeLLM, transport: ClosableTransport
) -> None:
    fake.script(Status(500, message="backend exploded"))

    error = fail(transport)

    assert (error.kind, error.status, error.retry_after) == ("http", 500, None)
    assert "backend exploded" in str(error)
    assert len(fake.requests) == 1  # the SDK did not retry behind the planner's back


def test_rate_limit_is_rate_limited_with_retry_after(
    fake: FakeLLM, transport: ClosableTransport
) -> None:
    fake.script(Status(429, message="quota exceeded", retry_after="2"))

    error = fail(transport)

    assert (error.kind, error.status, error.retry_after) == ("rate_limited", 429, 2.0)
    assert len(fake.requests) == 1


def test_gemini_retry_info_detail_gives_retry_after(fake_gemini: FakeGemini) -> None:
    # The real Gemini API says how long to wait in a google.rpc.RetryInfo detail.
    body = {
        "error": {
            "code": 429,
            "message": "Resource has been exhausted",
            "status": "RESOURCE_EXHAUSTED",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "3.5s"}
            ],
        }
    }
    fake_gemini.script(Status(429, body=json.dumps(body)))
    transport = connect(fake_gemini)
    try:
        error = fail(transport)
    finally:
        transport.close()

    assert (error.kind, error.retry_after) == ("rate_limited", 3.5)


def test_wrong_model_is_http_404(fake: FakeLLM) -> None:
    transport = (
        GeminiTransport(model="no-such-model", api_key=fake.api_key, base_url=fake.url)
        if isinstance(fake, FakeGemini)
        else OpenAITransport(model="no-such-model", api_key=fake.api_key, base_url=fake.url)
    )
    try:
        error = fail(transport)
    finally:
        transport.close()

    assert (error.kind, error.status) == ("http", 404)


def test_slow_reply_times_out_within_the_timeout(
    fake: FakeLLM, transport: ClosableTransport
) -> None:
    fake.script(Reply(delay=5.0))

    started = time.monotonic()
    error = fail(transport, timeout=0.5)
    elapsed = time.monotonic() - started

    assert error.kind == "timeout"
    assert elapsed < 0.5 + 1.0
    assert len(fake.requests) == 1


def test_refusal_is_refused(fake: FakeLLM, transport: ClosableTransport) -> None:
    fake.script(Refusal())

    error = fail(transport)

    assert error.kind == "refused"
    assert error.status is None


@pytest.mark.parametrize(
    "step",
    [Reply("", finish_reason="SAFETY"), Reply('{"action": "rest', finish_reason="RECITATION")],
    ids=["safety-no-content", "recitation-partial-text"],
)
def test_gemini_stopped_for_safety_is_refused(fake_gemini: FakeGemini, step: Reply) -> None:
    fake_gemini.script(step)
    transport = connect(fake_gemini)
    try:
        error = fail(transport)
    finally:
        transport.close()

    assert error.kind == "refused"


def test_gemini_reply_without_candidates_is_refused(fake_gemini: FakeGemini) -> None:
    fake_gemini.script(Status(200, body='{"modelVersion": "gemini-2.5-flash"}'))
    transport = connect(fake_gemini)
    try:
        error = fail(transport)
    finally:
        transport.close()

    assert error.kind == "refused"


def test_openai_content_filter_is_refused(fake_openai: FakeOpenAI) -> None:
    fake_openai.script(Reply("", finish_reason="content_filter"))
    transport = connect(fake_openai)
    try:
        error = fail(transport)
    finally:
        transport.close()

    assert error.kind == "refused"


def test_blank_reply_is_empty(fake: FakeLLM, transport: ClosableTransport) -> None:
    fake.script(Reply(" \n"))

    assert fail(transport).kind == "empty"


def test_body_that_is_not_the_protocol_is_http(fake: FakeLLM, transport: ClosableTransport) -> None:
    fake.script(
        Status(200, body="<html>captive portal</html>", headers={"Content-Type": "text/html"})
    )

    assert fail(transport).kind == "http"


def test_closed_port_is_connection(fake: FakeLLM) -> None:
    transport = connect(fake, url=closed_port_url(fake.url_suffix))
    started = time.monotonic()
    try:
        error = fail(transport, timeout=2.0)
    finally:
        transport.close()

    assert error.kind == "connection"
    assert time.monotonic() - started < 2.0


# --- secrets ---------------------------------------------------------------------------


def test_api_key_never_appears_in_an_error(fake: FakeLLM) -> None:
    wrong_key = "sk-wrong-0123456789abcdef"
    transport = connect(fake, api_key=wrong_key)
    try:
        rejected = fail(transport)  # the OpenAI fake echoes a wrong key back, in full
        fake.script(Status(500, message=f"upstream saw key {fake.api_key}, giving up"))
        own = connect(fake)
        try:
            echoed = fail(own)
        finally:
            own.close()
    finally:
        transport.close()

    assert rejected.kind == "http"
    assert rejected.status in {400, 401}
    for error, key in ((rejected, wrong_key), (echoed, fake.api_key)):
        assert key not in str(error)
        assert key not in repr(error)
        assert error.__cause__ is None  # no chained SDK exception carrying the raw body
        assert error.__suppress_context__


# --- helpers ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("2", 2.0),
        (" 0.5 ", 0.5),
        ("-3", 0.0),
        ("Wed, 21 Oct 2015 07:28:10 GMT", 10.0),
        ("Wed, 21 Oct 2015 07:27:00 GMT", 0.0),
        ("soon", None),
        ("", None),
        (None, None),
        ("nan", None),
    ],
)
def test_parse_retry_after(header: str | None, expected: float | None) -> None:
    now = 1445412480.0  # Wed, 21 Oct 2015 07:28:00 GMT
    assert parse_retry_after(header, now=now) == expected


def test_clean_message_redacts_and_shortens() -> None:
    message = clean_message("key=abc123\n" + "x" * 1000, "abc123", "")

    assert "abc123" not in message
    assert "\n" not in message
    assert len(message) <= 300
