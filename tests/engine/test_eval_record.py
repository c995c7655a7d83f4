"""Rebuilding recorded decision points from the store (SQLite and PostgreSQL): what a
model's prompt showed (samples, fleet, labels), what was tried, the host's past as it
stood at each decision, holds then; and what the store lacks named, never made up."""

from __future__ import annotations

import time
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from engine.decision_eval.build import build_situation
from engine.decision_eval.capture import recorded_decisions
from engine.decision_eval.case import PolicyRef, Scenario
from engine.decision_eval.case_file import case_yaml
from engine.decision_eval.policy_ref import PolicyCache
from engine.plan.prompt import SYSTEM, build_user_prompt
from engine.plan.situation import Situation
from engine.policy.maintenance_request import WindowRequest
from engine.record.recorder import Recorder
from engine.redact import Redactor
from engine.types import (
    HostHistory,
    HostRunStats,
    HostState,
    HostStatus,
    PlannerCall,
    Proposal,
    RunRequest,
    RunResult,
    Sample,
    Verdict,
    VerdictKind,
)

TOKEN = "tok-5f0c2b9e8d7a6c5b"


def execute(action: str) -> Verdict:
    return Verdict(VerdictKind.EXECUTE, action, f"{action} is whitelisted", "allowed")


def test_recorded_decisions_rebuild_each_decision_point(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    t0 = time.time() - 3600
    state = HostState("web1", HostStatus.HIGH_CPU, 97.0, t0 - 300, "cpu 97.0% above 85% for 300s")
    incident = recorder.incidents.open(
        "web1", "high_cpu", 97.0, state.reason, at=t0, since=state.since
    )
    samples = tuple(Sample("web1", t0 - 15 * i, 97.0) for i in range(20, -1, -1))
    situation = Situation(
        host="web1",
        state=state,
        incident_id=incident,
        tried=(),
        history=HostHistory("web1"),
        fleet={HostStatus.NORMAL: 9, HostStatus.HIGH_CPU: 1},
        actions={"restart_nginx": "restart", "rollback_nginx": "roll back"},
        ladder=("restart_nginx", "rollback_nginx"),
        now=t0,
        samples=samples,
        labels={"team": "web", "note": f"api_token={TOKEN}"},
    )
    prompt = build_user_prompt(situation, labels=situation.labels, samples=samples, thresholds={})
    call = PlannerCall("gemini", "gemini-2.5-flash", 0.4, 1, f"{SYSTEM}\n\n{prompt}", "{}")
    first = recorder.decisions.record(
        incident,
        "web1",
        Proposal("restart_nginx", 0.9, "cpu pegged", planner="gemini", call=call),
        execute("restart_nginx"),
        t0,
    )
    request = RunRequest("restart_nginx", "/p/restart_nginx.yml", ("web1",))
    run = recorder.runs.begin(
        request,
        ident="r1",
        artifact_dir="/tmp/r1",
        trigger="engine",
        requested_by="engine",
        at=t0 + 1,
        decisions=[(incident, first)],
    )
    stats = {"web1": HostRunStats(ok=3, changed=1)}
    recorder.runs.end(run, RunResult("r1", "successful", 0, "/tmp/r1", t0 + 1, t0 + 40, stats))
    recorder.maintenance.start(
        WindowRequest("web1", None, "disk swap", t0 + 50, t0 + 7200),
        by="alice",
        source="cli",
        at=t0 + 50,
    )
    second = recorder.decisions.record(
        incident,
        "web1",
        Proposal("rollback_nginx", 0.9, "still pegged"),
        Verdict(VerdictKind.WAIT, None, "suppressed: maintenance", "maintenance"),
        t0 + 60,
    )

    found = recorded_decisions(
        sessions, incident, policy_base="default", labels=None, groups=["web"]
    )
    assert [r.decision.id for r in found] == [first, second]
    one, two = (r.scenario for r in found)
    # The first: what the model was shown, from its prompt.
    assert len(one["samples"]["points"]) == 21 and one["samples"]["points"][-1] == [0.0, 97.0]
    assert one["fleet"] == {"NORMAL": 9, "HIGH_CPU": 1}
    assert one["labels"]["team"] == "web"
    assert one["tried"] == [] and one["history"] == [] and "maintenance" not in one
    assert one["missing"] == ["remediating_hosts"]
    # The second: the restart had run (its cure not yet known), a window held; no prompt.
    assert two["tried"] == ["restart_nginx"]
    (past,) = two["history"]
    assert (past["action"], past["same_incident"], past["cured"]) == ("restart_nginx", True, None)
    assert past["took_minutes"] == 0.65
    assert two["maintenance"][0]["reason"] == "disk swap"
    assert two["missing"] == ["remediating_hosts", "samples", "fleet", "labels"]
    assert two["state"]["status"] == "HIGH_CPU" and two["state"]["value"] == 97.0

    # Each rebuilds into the engine's Situation; a captured file never shows the token.
    policy = PolicyCache().get(PolicyRef(base="default"), Path("x.yaml"))
    for recorded in found:
        rebuilt = build_situation(Scenario.model_validate(recorded.scenario), policy)
        assert rebuilt.state.status is HostStatus.HIGH_CPU
    assert TOKEN not in case_yaml(found[0], Redactor([TOKEN]))
    assert TOKEN not in case_yaml(found[0], Redactor())  # api_token=... looks secret anyway
