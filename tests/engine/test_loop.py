"""The engine's tick end to end with real Ansible runs and a real SQLite store.

Metrics come through the engine's own MetricsSource seam from a scripted source (the
real Prometheus path is covered in tests/integration); everything after it is real.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.components import Components
from engine.loop import Engine
from engine.plan.rules import RulesPlanner
from engine.plan.situation import Planner
from engine.settings import load_settings
from engine.store import open_store
from engine.types import Proposal, RunRequest, Verdict, VerdictKind
from tests.fixtures.reads import incident_detail, list_incidents, list_runs
from tests.fixtures.scripted import ScriptedSource, SkewClock
from tests.fixtures.store import migrated_sqlite

PLAYBOOKS = {
    "ok.yml": "- name: Succeed\n  hosts: all\n  gather_facts: false\n  tasks:\n"
    "    - name: Say ok\n      ansible.builtin.debug:\n        msg: ok\n",
    "fail.yml": "- name: Fail\n  hosts: all\n  gather_facts: false\n  tasks:\n"
    "    - name: Fail on purpose\n      ansible.builtin.fail:\n        msg: broken\n",
    "slow.yml": "- name: Take a while\n  hosts: all\n  gather_facts: false\n  tasks:\n"
    "    - name: Nap\n      ansible.builtin.command:\n        argv: [sleep, '3']\n"
    "      changed_when: false\n",
}
POLICY = """
detection:
  high_cpu: {trigger: 80, clear: 50, window: 1s, sustain: 0s, step: 1s, stale_after: 3s}
actions:
  first_fix: {playbook: FIRST, description: first rung, timeout: 60s}
  second_fix: {playbook: ok.yml, description: second rung, timeout: 60s}
trust: {actions: {first_fix: auto, second_fix: auto}}
remediation:
  ladder: [first_fix, second_fix]
  cooldown: 1h
  max_attempts: 2
  max_concurrent: 5
  verify_timeout: VERIFY
  approval_timeout: 3s
"""
INVENTORY = """
all:
  hosts:
    web1: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
    web2: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
    web3: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
"""


PLAN_WAIT = 10.0  # seconds


class Lab:
    """An engine on a temporary store, playbooks and inventory."""

    def __init__(
        self,
        tmp_path: Path,
        *,
        first: str = "ok.yml",
        verify_timeout: str = "20s",
        inventory: str = INVENTORY,
    ):
        books = tmp_path / "playbooks"
        books.mkdir()
        for name, text in PLAYBOOKS.items():
            (books / name).write_text(text)
        policy_file = tmp_path / "policy.yaml"
        policy_file.write_text(POLICY.replace("FIRST", first).replace("VERIFY", verify_timeout))
        inventory_file = tmp_path / "inventory.yml"
        inventory_file.write_text(inventory)
        self.tmp_path = tmp_path
        self.books = books
        self.settings = load_settings(
            {
                "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
                "AUTOSRE_POLICY": str(policy_file),
                "AUTOSRE_INVENTORY": str(inventory_file),
                "AUTOSRE_PLAYBOOK_DIR": str(books),
            }
        )
        self.sessions = open_store(migrated_sqlite(tmp_path / "autosre.db"))
        self.components = Components(self.settings, sessions=self.sessions)
        self.policy = self.components.policy
        self.inventory = self.components.inventory
        self.recorder = self.components.recorder
        self.locks = self.components.locks
        self.clock = SkewClock()
        self.values: dict[str, float | None] = {"web1": 20.0, "web2": 20.0, "web3": 20.0}
        self.engines: list[Engine] = []

    def engine(self, planner: Planner | None = None) -> Engine:
        source = ScriptedSource(lambda host, _t: self.values[host], ("web1", "web2", "web3"))
        engine = Engine(
            self.components,
            metrics=source,
            planner=planner or RulesPlanner(),
            clock=self.clock,
            # A tick judges the proposals made within this wait, and goes on as soon as
            # they are in: a generous one keeps a busy machine from moving a decision to
            # the next tick (0.3 s in production, where the next tick comes anyway).
            plan_wait=PLAN_WAIT,
        )
        self.engines.append(engine)
        return engine

    def tick_until(self, engine: Engine, what: str, done: Callable[[], bool], timeout: float = 40):
        """Tick, one second of the engine's time apart, until done (runs are waited for)."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            engine.tick()
            engine.wait_idle(60)  # a run in flight: wait for it rather than spin
            self.clock.advance(1.0)

    def incidents(self, host: str | None = None) -> list[dict]:
        return list_incidents(self.sessions, host=host)

    def status(self, host: str) -> str | None:
        rows = self.incidents(host)
        return rows[0]["status"] if rows else None


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    made = Lab(tmp_path)
    yield made
    for engine in made.engines:
        engine.shutdown()


def test_two_hosts_high_in_one_tick_share_one_run_and_both_resolve(lab: Lab) -> None:
    engine = lab.engine()
    lab.values.update(web1=95.0, web2=97.0)
    engine.tick()
    runs = list_runs(lab.sessions)
    assert len(runs) == 1
    assert sorted(runs[0]["hosts"]) == ["web1", "web2"]
    assert {lab.status("web1"), lab.status("web2")} == {"remediating"}
    assert engine.wait_idle(60)
    lab.values.update(web1=10.0, web2=12.0)
    lab.tick_until(
        engine, "both resolved", lambda: lab.status("web1") == lab.status("web2") == "resolved"
    )
    incident = lab.incidents("web1")[0]
    assert incident["cpu_before"] == 95.0
    assert incident["cpu_after"] == 10.0
    assert lab.incidents("web3") == []


def test_failed_run_climbs_the_ladder_then_escalates_and_stops(tmp_path: Path) -> None:
    lab = Lab(tmp_path, first="fail.yml")
    engine = lab.engine()
    try:
        lab.values["web1"] = 99.0
        lab.tick_until(engine, "escalation", lambda: lab.status("web1") == "escalated", 60)
        detail = incident_detail(lab.sessions, lab.incidents("web1")[0]["id"])
        assert detail is not None
        assert [r["action"] for r in detail["runs"]] == ["first_fix", "second_fix"]
        assert [r["status"] for r in detail["runs"]] == ["failed", "successful"]
        outcomes = [d["outcome"] for d in detail["decisions"] if d["verdict"] == "execute"]
        assert outcomes == ["run_failed", "not_recovered"]
        assert detail["decisions"][-1]["verdict"] == "escalate"
        for _ in range(10):  # still burning: no more runs, no new incident
            engine.tick()
        assert engine.wait_idle(5)
        assert len(list_runs(lab.sessions)) == 2
        assert len(lab.incidents("web1")) == 1
        lab.values["web1"] = 5.0
        lab.tick_until(engine, "closing", lambda: lab.incidents("web1")[0]["closed_at"] is not None)
        assert lab.status("web1") == "escalated"
    finally:
        engine.shutdown()


def test_unknown_host_is_held_not_remediated(lab: Lab) -> None:
    engine = lab.engine()
    lab.values["web3"] = None
    for _ in range(3):
        engine.tick()
    assert lab.incidents("web3") == []
    # An incident whose data disappears is held, with one record of why.
    lab.values["web1"] = 95.0
    lab.locks.acquire(["web1"], "test holds the host").release()  # lock is free
    held = lab.locks.acquire(["web1"], "an operator's manual run")
    try:
        engine.tick()  # decides, but the host is busy: waits
        assert list_runs(lab.sessions) == []
        lab.values["web1"] = None
        for _ in range(3):
            engine.tick()
    finally:
        held.release()
    assert list_runs(lab.sessions) == []
    detail = incident_detail(lab.sessions, lab.incidents("web1")[0]["id"])
    assert detail is not None
    kinds = [e["kind"] for e in detail["timeline"]]
    assert kinds.count("holding") == 1
    assert "waiting" in kinds
    assert "an operator's manual run" in " ".join(e["message"] for e in detail["timeline"])


def test_no_data_after_a_run_is_not_success(tmp_path: Path) -> None:
    lab = Lab(tmp_path, verify_timeout="1s")
    engine = lab.engine()
    try:
        lab.values["web2"] = 96.0
        engine.tick()
        assert engine.wait_idle(60)
        lab.values["web2"] = None
        lab.tick_until(engine, "failure", lambda: lab.status("web2") == "failed")
        detail = incident_detail(lab.sessions, lab.incidents("web2")[0]["id"])
        assert detail is not None
        assert detail["decisions"][0]["outcome"] == "unverified"
        assert "cannot verify" in detail["summary"]
    finally:
        engine.shutdown()


def _crashed_mid_run(lab: Lab) -> int:
    """The store as an engine killed mid-run left it: first_fix running on web1."""
    now = time.time()
    incident = lab.recorder.incidents.open("web1", "high_cpu", 97.0, "cpu 97%", at=now, since=now)
    decision = lab.recorder.decisions.record(
        incident,
        "web1",
        Proposal("first_fix", 0.9, "r"),
        Verdict(VerdictKind.EXECUTE, "first_fix", "allowed", "allowed"),
        now,
    )
    request = RunRequest("first_fix", str(lab.books / "ok.yml"), ("web1",))
    lab.recorder.runs.begin(
        request,
        ident="crashed-run",
        artifact_dir="x",
        trigger="engine",
        requested_by="engine",
        at=now,
        decisions=[(decision, incident)],
    )
    return incident


def test_a_run_cut_off_by_a_crash_runs_again_only_when_fresh_data_says_so(lab: Lab) -> None:
    # Cut off, its effect is unknown: not a failure, and not a rung done. The host still
    # reads high after the restart, so the same rung runs again, as a new decision.
    _crashed_mid_run(lab)
    lab.values["web1"] = 97.0
    engine = lab.engine()  # the "restarted" engine
    runs = list_runs(lab.sessions)
    assert runs[0]["status"] == "interrupted"
    assert lab.status("web1") == "open"
    engine.tick()
    assert engine.wait_idle(60)
    runs = list_runs(lab.sessions)
    assert [(r["action"], r["status"]) for r in reversed(runs)] == [
        ("first_fix", "interrupted"),
        ("first_fix", "successful"),
    ]
    (incident,) = list_incidents(lab.sessions)
    detail = incident_detail(lab.sessions, incident["id"])
    assert detail is not None
    assert len({d["id"] for d in detail["decisions"]}) == 2, "the cut-off decision was re-run"


def test_a_host_well_after_a_crash_closes_without_another_run(lab: Lab) -> None:
    incident = _crashed_mid_run(lab)
    lab.values["web1"] = 20.0
    engine = lab.engine()
    lab.tick_until(engine, "the incident to close", lambda: lab.status("web1") == "resolved")
    assert [r["status"] for r in list_runs(lab.sessions)] == ["interrupted"]
    detail = incident_detail(lab.sessions, incident)
    assert detail is not None
    assert "recovered before any complete action (first_fix was cut off)" in detail["summary"]


def test_a_wave_decided_in_one_tick_starts_at_most_max_concurrent(tmp_path: Path) -> None:
    # The gate counts incidents already remediating, which is none for hosts decided
    # together: the launch itself must hold the line.
    lab = Lab(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy.read_text().replace("max_concurrent: 5", "max_concurrent: 2"))
    lab.components = Components(lab.settings, sessions=lab.sessions)
    engine = lab.engine()
    try:
        lab.values.update(web1=95.0, web2=96.0, web3=97.0)
        engine.tick()
        (run,) = list_runs(lab.sessions)
        assert len(run["hosts"]) == 2
        (left,) = {"web1", "web2", "web3"} - set(run["hosts"])
        assert lab.status(left) == "open"
        events = incident_detail(lab.sessions, lab.incidents(left)[0]["id"])["timeline"]
        waiting = [e["message"] for e in events if e["kind"] == "waiting"]
        assert waiting == [
            "2 hosts already being remediated (max_concurrent 2): waiting for a slot"
        ]
        assert engine.wait_idle(60)
        lab.values.update(dict.fromkeys(run["hosts"], 10.0))  # the first two are cured
        lab.tick_until(engine, "the third host's run", lambda: len(list_runs(lab.sessions)) == 2)
        assert list_runs(lab.sessions)[0]["hosts"] == [left]
    finally:
        engine.shutdown()


def test_a_run_that_timed_out_closes_only_on_samples_from_after_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The cure may land before the timeout (nginx restarted, then the play hung): the
    # close must still rest on samples taken after the run, like any verification.
    hang = (
        "- name: Hang\n  hosts: all\n  gather_facts: false\n  tasks:\n"
        "    - name: Hang past the timeout\n      ansible.builtin.command: sleep 30\n"
        "      changed_when: true\n"
    )
    monkeypatch.setitem(PLAYBOOKS, "hang.yml", hang)
    lab = Lab(tmp_path, first="hang.yml")
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy.read_text().replace("timeout: 60s}", "timeout: 2s}", 1))
    lab.components = Components(lab.settings, sessions=lab.sessions)
    engine = lab.engine()
    try:
        lab.values.update(web1=95.0)
        engine.tick()
        lab.values.update(web1=10.0)  # cured while the run still hangs
        assert engine.wait_idle(60)
        (run,) = list_runs(lab.sessions)
        assert run["status"] == "timeout"
        ended = lab.clock()
        lab.tick_until(engine, "web1 closed", lambda: lab.status("web1") == "resolved")
        incident = lab.incidents("web1")[0]
        assert incident["summary"].startswith("recovered after remediation: median cpu 10.0%")
        assert "since the run ended" in incident["summary"]
        settle = lab.policy.settle("high_cpu")
        closed = incident_detail(lab.sessions, incident["id"])["closed_at"]
        assert closed is not None
        assert lab.clock() - 1.0 >= ended + settle
    finally:
        engine.shutdown()


def test_a_runs_own_load_does_not_open_a_new_incident(tmp_path: Path) -> None:
    # The run's CPU reads on its own host; a high run that began before the run settled
    # counts only once it has lasted a sustain window after the settle.
    lab = Lab(tmp_path)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy.read_text().replace("sustain: 0s", "sustain: 4s"))
    lab.components = Components(lab.settings, sessions=lab.sessions)
    engine = lab.engine()
    try:
        lab.values.update(web1=95.0)
        lab.tick_until(engine, "a run on web1", lambda: len(list_runs(lab.sessions)) == 1)
        assert engine.wait_idle(60)
        lab.values.update(web1=10.0)
        lab.tick_until(engine, "web1 resolved", lambda: lab.status("web1") == "resolved")
        # Now web1's samples read high again: its CPU during the run (the scripted source
        # replays one value for the whole window, as a long rate window would).
        quiet = engine.run_stage.quiet_until["web1"]
        lab.values.update(web1=90.0)
        while lab.clock() < quiet + 3.0:
            engine.tick()
            lab.clock.advance(1.0)
        assert len(lab.incidents("web1")) == 1  # not a new incident on the run's own load
        # Still high a whole sustain window after the settle: that is a real problem.
        lab.tick_until(engine, "a second incident", lambda: len(lab.incidents("web1")) == 2)
    finally:
        engine.shutdown()


@pytest.mark.parametrize(("grace", "status"), [(30.0, "successful"), (0.0, "canceled")])
def test_a_stopping_engine_lets_a_run_in_flight_finish_within_its_grace(
    tmp_path: Path, grace: float, status: str
) -> None:
    lab = Lab(tmp_path, first="slow.yml")
    engine = lab.engine()
    lab.values["web1"] = 97.0
    deadline = time.monotonic() + 30
    while not any(r["status"] == "running" for r in list_runs(lab.sessions)):
        assert time.monotonic() < deadline, "the run never started"
        engine.tick()
        lab.clock.advance(1.0)
    engine.shutdown(grace=grace)
    (run,) = list_runs(lab.sessions)
    assert run["status"] == status, run
