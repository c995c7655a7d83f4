"""A real engine (real Ansible runs, a real SQLite store) never runs a playbook on a host in
maintenance: the incident opens, the decision is recorded as suppressed, nobody is paged;
once the window ends (early, by one call) the engine acts again.

Metrics come through the engine's MetricsSource seam from a scripted source, as in
tests/engine/test_loop.py; everything after it is real.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from engine.execute.by_hand import run_by_hand
from engine.loop import Engine
from engine.plan.rules import RulesPlanner
from engine.policy.maintenance_request import window_request
from tests.fixtures.engine_rig import Pager, rig_components
from tests.fixtures.reads import incident_detail, list_incidents, list_runs
from tests.fixtures.scripted import ScriptedSource, SkewClock

OK_PLAYBOOK = (
    "- name: Succeed\n  hosts: all\n  gather_facts: false\n  tasks:\n"
    "    - name: Say ok\n      ansible.builtin.debug:\n        msg: ok\n"
)
POLICY = """
version: 2
signals:
  high_cpu: {trigger: 80, clear: 50, window: 1s, sustain: 0s, step: 1s, stale_after: 3s,
             ladder: [fix, fix_again]}
actions:
  fix: {playbook: ok.yml, description: the fix, timeout: 60s}
  fix_again: {playbook: ok.yml, description: the fix again, timeout: 60s}
trust: {actions: {fix: auto, fix_again: auto}}
remediation:
  cooldown: 0s
  max_attempts: 2
  verify_timeout: 20s
  flapping: {max_remediations: 2, window: 1h}
"""
LOCAL = '{ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}'
INVENTORY = f"""
all:
  children:
    web:
      hosts:
        web1: {LOCAL}
        web2: {LOCAL}
    db:
      hosts:
        db1: {LOCAL}
"""
HOSTS = ("web1", "web2", "db1")


class Rig:
    """An engine on a temporary store, playbooks and an inventory with groups."""

    def __init__(self, tmp_path: Path) -> None:
        self.sessions, self.components = rig_components(
            tmp_path, policy=POLICY, inventory=INVENTORY, playbook=OK_PLAYBOOK
        )
        self.recorder = self.components.recorder
        self.clock = SkewClock()
        self.values: dict[str, float | None] = dict.fromkeys(HOSTS, 20.0)
        self.pager = Pager()
        self.engines: list[Engine] = []

    def engine(self) -> Engine:
        source = ScriptedSource(lambda host, _t: self.values[host], HOSTS)
        made = Engine(
            self.components,
            metrics=source,
            planner=RulesPlanner(),
            notifier=self.pager,
            clock=self.clock,
            plan_wait=10.0,
        )
        self.engines.append(made)
        return made

    def window(self, *, host: str | None = None, group: str | None = None, hours: float = 2) -> int:
        now = self.clock()
        request = window_request(
            self.components.inventory,
            host=host,
            group=group,
            reason="kernel upgrade <b>{{ 7*7 }}</b>",
            now=now,
            max_duration=7 * 86400.0,
            duration=hours * 3600,
        )
        return self.recorder.maintenance.start(request, by="alice", source="cli", at=now)

    def tick(self, engine: Engine, n: int = 1) -> None:
        for _ in range(n):
            engine.tick()
            engine.wait_idle(60)
            self.clock.advance(1.0)

    def tick_until(
        self, engine: Engine, what: str, done: Callable[[], bool], timeout: float = 60
    ) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.tick(engine)

    def incidents(self, host: str) -> list[dict[str, Any]]:
        return list_incidents(self.sessions, host=host)

    def runs_on(self, host: str) -> list[dict[str, Any]]:
        return [r for r in list_runs(self.sessions) if host in r["hosts"]]

    def paged(self, host: str) -> list[dict[str, Any]]:
        return [page for page in self.pager.pages if page["host"] == host]

    def decisions(self, host: str) -> list[dict[str, Any]]:
        found = []
        for incident in reversed(self.incidents(host)):
            detail = incident_detail(self.sessions, incident["id"])
            assert detail is not None
            found += detail["decisions"]
        return found


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path)
    yield made
    for engine in made.engines:
        engine.shutdown()
    made.components.close()


def test_a_host_in_maintenance_is_never_touched_and_the_suppression_is_recorded(
    rig: Rig,
) -> None:
    engine = rig.engine()
    window_id = rig.window(host="web2")
    rig.values.update(web1=95.0, web2=97.0)
    rig.tick_until(engine, "web1 remediated", lambda: bool(rig.runs_on("web1")))
    rig.tick(engine, 5)
    # Detection went on: web2's incident is open, its decision suppressed, and no run.
    assert rig.runs_on("web2") == []
    assert rig.incidents("web2")[0]["status"] == "open"
    decisions = rig.decisions("web2")
    assert len(decisions) == 1, "the same suppression is recorded once, not every tick"
    suppressed = decisions[0]
    assert (suppressed["verdict"], suppressed["rule"]) == ("wait", "maintenance")
    assert f"maintenance window {window_id} on host web2" in suppressed["reason"]
    assert "kernel upgrade <b>{{ 7*7 }}</b>" in suppressed["reason"]  # text, as typed
    assert "set by alice" in suppressed["reason"] and "until 20" in suppressed["reason"]
    assert rig.paged("web2") == []  # never paged for maintenance

    # One call ends it early; the engine acts on its next look (at most RECHECK later).
    rig.recorder.maintenance.end(window_id, by="bob", at=rig.clock())
    rig.tick_until(engine, "web2 remediated", lambda: bool(rig.runs_on("web2")), 90)
    rig.values["web2"] = 10.0
    rig.tick_until(
        engine, "web2 resolved", lambda: rig.incidents("web2")[0]["status"] == "resolved"
    )
    assert rig.paged("web2") == []


def test_a_group_window_holds_every_host_of_the_group_and_only_those(rig: Rig) -> None:
    engine = rig.engine()
    rig.window(group="web")
    rig.values.update(web1=95.0, web2=95.0, db1=95.0)
    rig.tick_until(engine, "db1 remediated", lambda: bool(rig.runs_on("db1")))
    rig.tick(engine, 3)
    for host in ("web1", "web2"):
        assert rig.runs_on(host) == []
        assert [d["rule"] for d in rig.decisions(host)] == ["maintenance"]
        assert "on group web" in rig.decisions(host)[0]["reason"]
        assert rig.paged(host) == []


def test_a_run_by_hand_in_maintenance_is_allowed_and_audited_as_such(rig: Rig) -> None:
    window_id = rig.window(host="web1")
    result = run_by_hand(
        rig.components,
        action="fix",
        hosts=["web1"],
        extra_vars={},
        check=False,
        requested_by="olga",
    )
    assert result.status == "successful"
    audit = [json.loads(line) for line in rig.recorder.journal.audit.path.read_text().splitlines()]
    noted = [line for line in audit if line["kind"] == "manual_run_in_maintenance"]
    assert len(noted) == 1 and noted[0]["run_id"] is not None
    assert f"web1 is in maintenance window {window_id}" in noted[0]["message"]
    assert noted[0]["data"] == {"by": "olga", "hosts": ["web1"]}
