"""The engine with the Gemini planner (real google-genai client, fake server on 127.0.0.1):
approvals, rejections, expiry, and secrets kept out of every record and request."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.plan.gemini import GeminiTransport
from engine.plan.llm import LLMPlanner
from engine.plan.rules import RulesPlanner
from tests.engine.test_loop import INVENTORY, Lab
from tests.fixtures.fake_llm import FakeLLM
from tests.fixtures.reads import incident_detail, list_runs

SECRET_HOST_VAR = "hunter2-host-secret"


def answer(action: str, confidence: float) -> str:
    return json.dumps({"action": action, "confidence": confidence, "rationale": "cpu pegged"})


@pytest.fixture
def gemini(fake_gemini: FakeLLM) -> Iterator[LLMPlanner]:
    transport = GeminiTransport(
        model=fake_gemini.model, api_key=fake_gemini.api_key, base_url=fake_gemini.url
    )
    yield LLMPlanner(
        transport=transport,
        fallback=RulesPlanner(),
        timeout=2.0,
        thresholds={"high_cpu": {"trigger": 80.0}},
        secrets=[fake_gemini.api_key],
    )
    transport.close()


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    made = Lab(tmp_path)
    yield made
    for engine in made.engines:
        engine.shutdown()


def pending_approval_id(lab: Lab) -> int | None:
    rows = lab.recorder.memory.pending_approvals()
    return rows[0].id if rows else None


def test_confident_proposal_runs_at_once(
    lab: Lab, gemini: LLMPlanner, fake_gemini: FakeLLM
) -> None:
    fake_gemini.script(answer("second_fix", 0.95))
    engine = lab.engine(gemini)
    lab.values["web1"] = 95.0
    engine.tick()
    runs = list_runs(lab.sessions)
    assert [r["action"] for r in runs] == ["second_fix"]
    detail = incident_detail(lab.sessions, lab.incidents("web1")[0]["id"])
    assert detail is not None
    decision = detail["decisions"][0]
    assert (decision["planner"], decision["action"], decision["verdict"]) == (
        "gemini",
        "second_fix",
        "execute",
    )
    assert decision["model"] == fake_gemini.model
    assert decision["input_tokens"] == 120
    assert "untrusted data" in decision["prompt"]


def test_low_confidence_waits_then_approved_runs(
    lab: Lab, gemini: LLMPlanner, fake_gemini: FakeLLM
) -> None:
    fake_gemini.script(answer("first_fix", 0.6))
    engine = lab.engine(gemini)
    lab.values["web1"] = 95.0
    lab.tick_until(engine, "an approval request", lambda: pending_approval_id(lab) is not None)
    assert lab.status("web1") == "awaiting_approval"
    for _ in range(3):
        engine.tick()
    assert list_runs(lab.sessions) == []  # nothing runs while it waits
    approval_id = pending_approval_id(lab)
    assert approval_id is not None
    lab.recorder.approvals.decide(approval_id, approve=True, by="alice", at=time.time(), note="ok")
    lab.tick_until(engine, "the approved run", lambda: bool(list_runs(lab.sessions)))
    assert [r["action"] for r in list_runs(lab.sessions)] == ["first_fix"]
    assert engine.wait_idle(60)
    lab.values["web1"] = 10.0
    lab.tick_until(engine, "resolution", lambda: lab.status("web1") == "resolved")
    detail = incident_detail(lab.sessions, lab.incidents("web1")[0]["id"])
    assert detail is not None
    planners = [d["planner"] for d in detail["decisions"]]
    assert planners == ["gemini", "human"]
    assert "approved by alice" in detail["decisions"][1]["rationale"]
    assert len(fake_gemini.requests) == 1  # one model call for the decision point


def test_rejected_action_never_runs(lab: Lab, gemini: LLMPlanner, fake_gemini: FakeLLM) -> None:
    fake_gemini.script(answer("first_fix", 0.6))
    engine = lab.engine(gemini)
    lab.values["web1"] = 95.0
    lab.tick_until(engine, "an approval request", lambda: pending_approval_id(lab) is not None)
    approval_id = pending_approval_id(lab)
    assert approval_id is not None
    lab.recorder.approvals.decide(approval_id, approve=False, by="bob", at=time.time(), note="no")
    lab.tick_until(engine, "escalation", lambda: lab.status("web1") == "escalated")
    for _ in range(3):
        engine.tick()
    assert list_runs(lab.sessions) == []
    assert "rejected by bob" in lab.incidents("web1")[0]["summary"]


def test_unanswered_approval_expires_and_escalates(
    lab: Lab, gemini: LLMPlanner, fake_gemini: FakeLLM
) -> None:
    fake_gemini.script(answer("first_fix", 0.6))
    engine = lab.engine(gemini)
    lab.values["web1"] = 95.0
    lab.tick_until(engine, "an approval request", lambda: pending_approval_id(lab) is not None)
    lab.tick_until(engine, "expiry", lambda: lab.status("web1") == "escalated", timeout=15)
    assert "expired" in lab.incidents("web1")[0]["summary"]
    assert list_runs(lab.sessions) == []


def test_secrets_stay_out_of_store_audit_artifacts_and_requests(
    tmp_path: Path, fake_gemini: FakeLLM, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GEMINI_API_KEY", fake_gemini.api_key)
    inventory = INVENTORY.replace(
        "web1: {ansible_connection: local,",
        f"web1: {{api_password: {SECRET_HOST_VAR}, ansible_connection: local,",
    )
    assert SECRET_HOST_VAR in inventory
    lab = Lab(tmp_path, inventory=inventory)
    transport = GeminiTransport(
        model=fake_gemini.model, api_key=fake_gemini.api_key, base_url=fake_gemini.url
    )
    planner = LLMPlanner(
        transport=transport,
        fallback=RulesPlanner(),
        timeout=2.0,
        thresholds={},
        secrets=[fake_gemini.api_key],
    )
    fake_gemini.script(answer("second_fix", 0.95))
    engine = lab.engine(planner)
    try:
        lab.values["web1"] = 95.0
        engine.tick()
        assert engine.wait_idle(60)
        lab.values["web1"] = 5.0
        lab.tick_until(engine, "resolution", lambda: lab.status("web1") == "resolved")
    finally:
        engine.shutdown()
        transport.close()
    assert fake_gemini.requests, "the model was asked"
    for recorded in fake_gemini.requests:
        assert fake_gemini.api_key not in json.dumps(recorded.body)
        assert SECRET_HOST_VAR not in json.dumps(recorded.body)
    for path in tmp_path.rglob("*"):
        if path.is_file() and path.suffix != ".yml":  # the inventory itself holds the var
            data = path.read_bytes()
            assert fake_gemini.api_key.encode() not in data, path
            assert SECRET_HOST_VAR.encode() not in data, path
