"""Staged runs against this machine's real nginx, through the real executor: the preflight
runs before the verdict, nothing changes until the release, and a run that is discarded, or
whose engine dies while it holds, ends having changed nothing."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from engine.components import Components
from engine.errors import RefusedError
from engine.execute.staged import StagedRun
from engine.loop import Engine, TickReport
from engine.plan.rules import RulesPlanner
from engine.record.run_cancel import request_cancel
from engine.settings import load_settings
from engine.store import open_store
from engine.store.models import Event, PlaybookRun
from engine.types import RunRequest
from tests.fixtures.ansible import (
    killed_engine,
    local_executor,
    local_inventory,
    processes_naming,
    task_outcomes,
    task_started,
)
from tests.fixtures.nginx import NginxService
from tests.fixtures.reads import incident_detail, list_incidents, list_runs
from tests.fixtures.scripted import ScriptedSource, SkewClock
from tests.fixtures.store import migrated_sqlite

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
HOST = "localhost"
HOLD = "Hold until the engine releases the restart"
PREFLIGHT = "Check the nginx configuration before touching the service"
RESTART = "Restart nginx"


def request(snapshot: Path) -> RunRequest:
    return RunRequest(
        action="restart_nginx",
        playbook=str(ROOT / "playbooks" / "restart_nginx.yml"),
        hosts=(HOST,),
        extra_vars={"nginx_known_good_dir": str(snapshot)},
        timeout=120,
    )


def wait_until(what: str, probe: Callable[[], object], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not probe():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_a_playbook_without_a_release_point_is_never_staged(tmp_path: Path) -> None:
    executor = local_executor(tmp_path, HOST)
    rollback = replace(
        request(tmp_path / "kg"), playbook=str(ROOT / "playbooks" / "rollback_nginx.yml")
    )
    with pytest.raises(RefusedError, match="no release point"):
        StagedRun(executor, rollback, ident="staged-0", hold=60)
    assert not (tmp_path / "runs").exists(), "nothing may start"


ENGINE = """
import os, signal, sys, time
from pathlib import Path
from engine.errors import RefusedError
from engine.execute.runner import AnsibleRunnerExecutor
from engine.execute.staged import StagedRun
from engine.types import RunRequest
tmp = Path(sys.argv[1])
executor = AnsibleRunnerExecutor(runs_dir=tmp / "runs", inventory_path=tmp / "inventory.yml",
                                 scratch_dir=tmp / "scratch")
request = RunRequest(action="restart_nginx", playbook=sys.argv[2], hosts=("localhost",),
                     extra_vars={"nginx_known_good_dir": str(tmp / "known-good")}, timeout=120)
StagedRun(executor, request, ident="staged-3", hold=3)
hold = tmp / "runs" / "staged-3" / "artifacts" / "staged-3" / "job_events"
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    if any("Hold until" in p.read_text() for p in hold.glob("*.json")):
        break
    time.sleep(0.05)
print(os.getpid(), flush=True)
os.kill(os.getpid(), signal.SIGKILL)  # the engine dies while the run holds
"""


def test_a_run_whose_engine_dies_while_it_holds_changes_nothing(
    nginx_service: NginxService, tmp_path: Path
) -> None:
    old = nginx_service.pid()
    local_inventory(tmp_path / "inventory.yml", HOST)
    playbook = str(ROOT / "playbooks" / "restart_nginx.yml")
    killed_engine(ENGINE, str(tmp_path), playbook)
    events = tmp_path / "runs" / "staged-3" / "artifacts" / "staged-3" / "job_events"
    assert any("Hold until" in p.read_text() for p in events.glob("*.json")), "never held"

    # Whatever is left of the run ends by itself: the hold times out (3 s) and fails.
    wait_until("the orphaned run to end", lambda: not processes_naming("staged-3"), timeout=30)
    assert nginx_service.pid() == old
    assert nginx_service.running()
    assert not (tmp_path / "known-good").exists()


# -- staged runs in the engine's loop -------------------------------------------------------

LOOP_POLICY = """
version: 2
signals:
  high_cpu:
    query: 'unused: the test feeds the samples'
    trigger: 80
    clear: 50
    window: 1s
    sustain: 4s
    step: 1s
    stale_after: 3s
    ladder: [restart_nginx]
actions:
  restart_nginx: {playbook: restart_nginx.yml, description: restart nginx, timeout: 60s}
trust: {actions: {restart_nginx: TRUST}}
remediation:
  cooldown: 1h
  max_attempts: 1
  auto_execute_confidence: CONFIDENCE
  verify_timeout: 20s
"""


class StagingLab:
    """An engine on this machine's nginx, fed scripted CPU samples on a clock the test moves."""

    def __init__(
        self, tmp_path: Path, *, auto_execute_confidence: float = 0.8, trust: str = "auto"
    ) -> None:
        policy = tmp_path / "policy.yaml"
        text = LOOP_POLICY.replace("CONFIDENCE", str(auto_execute_confidence))
        policy.write_text(text.replace("TRUST", trust))
        self.snapshot = tmp_path / "known-good"
        inventory = tmp_path / "inventory.yml"
        inventory.write_text(
            "all:\n  hosts:\n    web1:\n      ansible_connection: local\n"
            f"      ansible_python_interpreter: {sys.executable}\n"
            f"      nginx_known_good_dir: {self.snapshot}\n"
        )
        settings = load_settings(
            {
                "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
                "AUTOSRE_POLICY": str(policy),
                "AUTOSRE_INVENTORY": str(inventory),
                "AUTOSRE_PLAYBOOK_DIR": str(ROOT / "playbooks"),
            }
        )
        self.sessions = open_store(migrated_sqlite(tmp_path / "autosre.db"))
        self.components = Components(settings, sessions=self.sessions)
        self.burning_since: float | None = None  # engine time the scripted burn began
        self.clock = SkewClock()
        self.engine = Engine(
            self.components,
            metrics=ScriptedSource(self.cpu, ("web1",)),
            planner=RulesPlanner(),
            clock=self.clock,
            plan_wait=10.0,
        )

    def cpu(self, _host: str, at: float) -> float:
        burning = self.burning_since is not None and at >= self.burning_since
        return 95.0 if burning else 20.0

    def tick(self, seconds: float = 1.0) -> TickReport:
        self.clock.advance(seconds)
        return self.engine.tick()

    def runs(self) -> list[dict[str, Any]]:
        return list_runs(self.sessions)

    def events(self, run_ident: str) -> list[str]:
        with self.sessions() as session:
            rows = session.execute(
                select(Event.kind)
                .join(PlaybookRun, Event.run_id == PlaybookRun.id)
                .where(PlaybookRun.ident == run_ident)
                .order_by(Event.id)
            )
            return [kind for (kind,) in rows]

    def holding(self) -> Path:
        """Tick while the CPU rises until the engine has staged a run and it holds."""
        self.burning_since = self.clock() + 1.0 - 1.5
        report = self.tick()  # two samples of CPU busy (2 s), short of the 4 s window: rising
        # The sample completing the window may come a step before rising + sustain: the
        # scheduler polls from then (a tenth of the 1 s step apart).
        assert (report.due, report.poll) == (report.at - 1.0 + 4.0 - 1.0 - 1.0, 0.1)
        (run,) = self.runs()
        assert run["status"] == "staged", run
        ident = run["ident"]
        artifacts = self.components.settings.runs_dir / ident / "artifacts" / ident
        wait_until("the staged run to hold", lambda: task_started(artifacts, HOLD))
        assert task_outcomes(artifacts, PREFLIGHT) == ["runner_on_ok"]
        return artifacts


@pytest.fixture
def staging_lab(tmp_path: Path) -> Iterator[StagingLab]:
    lab = StagingLab(tmp_path)
    yield lab
    lab.engine.shutdown(timeout=60)


def test_the_engine_releases_its_staged_run_on_an_execute_verdict(
    nginx_service: NginxService, staging_lab: StagingLab
) -> None:
    lab, old = staging_lab, nginx_service.pid()
    artifacts = lab.holding()
    lab.tick()  # 3 s high: still rising, the run still holds
    assert nginx_service.pid() == old and not task_started(artifacts, RESTART)

    lab.tick()  # 4 s high: the incident opens, the rules propose, the gate says execute
    assert lab.engine.wait_idle(60)
    (run,) = lab.runs()  # the staged run itself did the work: no second run
    assert run["status"] == "successful", run
    assert lab.events(run["ident"])[:3] == ["run_staged", "run_released", "remediating"]
    assert nginx_service.wait_for_new_pid(old) != old
    assert (lab.snapshot / "nginx.conf").exists()

    lab.burning_since = None
    for _ in range(30):
        lab.tick()
        (incident,) = list_incidents(lab.sessions)
        if incident["status"] != "remediating":
            break
    assert incident["status"] == "resolved", incident
    detail = incident_detail(lab.sessions, incident["id"])
    assert detail is not None and detail["decisions"][0]["run_id"] == run["id"]


def test_a_staged_run_is_discarded_when_the_host_calms_down_first(
    nginx_service: NginxService, staging_lab: StagingLab
) -> None:
    lab, old = staging_lab, nginx_service.pid()
    artifacts = lab.holding()
    lab.burning_since = None
    lab.tick()  # the signal fell before the window filled: no incident, nothing to run
    assert lab.engine.wait_idle(60)
    (run,) = lab.runs()
    assert run["status"] == "discarded", run
    assert lab.events(run["ident"]) == ["run_staged", "run_discarded"]
    assert {stats["changed"] for stats in run["stats"].values()} == {0}, run
    assert not task_started(artifacts, RESTART)
    # A run is answered once: a discarded run is never released after all.
    release = lab.engine.stager.release("web1", "restart_nginx", decision=(1, 1), now=lab.clock())
    assert release is None
    assert nginx_service.pid() == old
    assert not lab.snapshot.exists()
    assert list_incidents(lab.sessions) == []


def test_a_staged_run_is_discarded_when_the_verdict_is_not_execute(
    nginx_service: NginxService, tmp_path: Path
) -> None:
    # The rules planner's 0.9 is below this policy's bar for acting alone: a human must
    # approve, and a staged run never waits for a human.
    lab, old = StagingLab(tmp_path, auto_execute_confidence=0.95), nginx_service.pid()
    try:
        artifacts = lab.holding()
        lab.tick(2.0)
        assert lab.engine.wait_idle(60)
        (run,) = lab.runs()
        assert run["status"] == "discarded", run
        assert "awaiting_approval" in (run["error"] or ""), run
        assert not task_started(artifacts, RESTART)
        assert nginx_service.pid() == old
        assert not lab.snapshot.exists()
        (incident,) = list_incidents(lab.sessions)
        assert incident["status"] == "awaiting_approval"
    finally:
        lab.engine.shutdown(timeout=60)


def test_a_person_cancels_a_staged_run_while_it_holds_and_nothing_is_restarted(
    nginx_service: NginxService, staging_lab: StagingLab
) -> None:
    # A staged run has its own cancel (engine/execute/staging.py): a person's request in the
    # store stops it before anything changed, and the engine does not act on that rise
    # behind their back: when the incident opens, it escalates.
    lab, old = staging_lab, nginx_service.pid()
    artifacts = lab.holding()
    (run,) = lab.runs()
    other = Components(lab.components.settings, sessions=lab.sessions)  # the web UI's process
    request_cancel(other.recorder.journal, run["id"], by="alice", at=time.time())
    wait_until("the staged run to stop", lambda: not processes_naming(run["ident"]), timeout=30)
    for _ in range(4):  # the sustain window fills: the incident opens, the gate says execute
        lab.tick()
    assert lab.engine.wait_idle(60)
    (run,) = lab.runs()  # no second run
    assert (run["status"], run["error"]) == (
        "canceled",
        "canceled by alice before it acted (run canceled, rc 254)",
    ), run
    assert not task_started(artifacts, RESTART)
    assert nginx_service.pid() == old
    assert not lab.snapshot.exists()
    (incident,) = list_incidents(lab.sessions)
    assert incident["status"] == "escalated", incident
    assert "stopped: canceled by alice before it acted; a human has it" in incident["summary"]


def test_nothing_is_staged_on_a_host_where_the_action_waits_for_a_human(
    nginx_service: NginxService, tmp_path: Path
) -> None:
    # At trust level propose (or observe), not even the staged run's read-only preflight
    # touches the host before a person approves.
    lab, old = StagingLab(tmp_path, trust="propose"), nginx_service.pid()
    try:
        lab.burning_since = lab.clock() + 1.0 - 1.5
        lab.tick()  # rising: with auto, a run would be staged now
        assert lab.runs() == []
        for _ in range(4):
            lab.tick()
        assert lab.engine.wait_idle(60)
        assert lab.runs() == []
        (incident,) = list_incidents(lab.sessions)
        assert incident["status"] == "awaiting_approval"
        assert nginx_service.pid() == old
    finally:
        lab.engine.shutdown(timeout=60)
