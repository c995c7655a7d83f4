"""After an engine is SIGKILLed mid-run: its ansible-playbook (which outlives it) is waited
for or stopped, a run that finished meanwhile is recorded with its real result, one cut
off stays interrupted (and is no failed attempt), a live run by hand is left alone, and
the scratch dir with the secret vars is gone.

The "engine" is a child Python that records the run as the engine does, starts the real
executor on a real playbook and kills itself once the playbook is under way.
"""

from __future__ import annotations

import os
import secrets
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy.orm import Session, sessionmaker

from engine.execute.locks import HostLocks
from engine.incident.life import IncidentStatus
from engine.reconcile import reconcile_runs
from engine.record.recorder import Recorder
from engine.store.models import Decision, Incident, PlaybookRun
from engine.types import Proposal, RunRequest, Verdict, VerdictKind
from tests.fixtures.ansible import killed_engine, local_inventory, processes_naming

HOST = "web1"
SECRET = "hunter2-vars-secret"

PLAYBOOK = """\
- name: Touch, then nap
  hosts: all
  gather_facts: false
  tasks:
    - name: Mark the start
      ansible.builtin.file:
        path: "{{ marker }}"
        state: touch
        mode: "0600"
    - name: Nap
      ansible.builtin.command:
        argv: [sleep, "{{ nap }}"]
      changed_when: false
"""

# The engine: starts the run on a thread, waits until the nap begins, dies (with nap 0:
# runs it to its end, and dies before recording it).
ENGINE = """
import os, signal, sys, threading, time
from pathlib import Path
from engine.execute.runner import AnsibleRunnerExecutor
from engine.types import RunRequest
tmp, ident, nap = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
executor = AnsibleRunnerExecutor(runs_dir=tmp / "runs", inventory_path=tmp / "inventory.yml",
                                 scratch_dir=tmp / "scratch")
request = RunRequest(action="nap", playbook=str(tmp / "nap.yml"), hosts=("web1",),
                     extra_vars={"marker": str(tmp / "marker"), "nap": nap,
                                 "token": "hunter2-vars-secret"}, timeout=120)
if nap == "0":
    executor.run(request, ident=ident)
    os.kill(os.getpid(), signal.SIGKILL)
threading.Thread(target=executor.run, args=(request,), kwargs={"ident": ident},
                 daemon=True).start()
deadline = time.monotonic() + 60
while not (tmp / "marker").exists() and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.5)
os.kill(os.getpid(), signal.SIGKILL)
"""


class _Scratch:
    """The executor as reconcile sees a local one: where its runs' scratch dirs are."""

    def __init__(self, scratch_dir: Path) -> None:
        self.scratch_dir = scratch_dir


def _record_run(recorder: Recorder, tmp_path: Path, ident: str) -> tuple[int, int, int]:
    """The store as the engine left it: an incident remediating through a running run."""
    incident = recorder.incidents.open(HOST, "high_cpu", 97.0, "cpu 97%", at=1.0, since=1.0)
    proposal = Proposal("nap", 0.9, "the host needs a nap", "rules")
    verdict = Verdict(VerdictKind.EXECUTE, "nap", "first rung of the ladder", "ladder")
    decision = recorder.decisions.record(incident, HOST, proposal, verdict, 2.0)
    request = RunRequest(action="nap", playbook=str(tmp_path / "nap.yml"), hosts=(HOST,))
    run_id = recorder.runs.begin(
        request,
        ident=ident,
        artifact_dir=str(tmp_path / "runs" / ident),
        trigger="engine",
        requested_by="engine",
        at=3.0,
        decisions=[(decision, incident)],
    )
    return incident, decision, run_id


def _engine_dies_mid_run(tmp_path: Path, ident: str, nap: int) -> None:
    local_inventory(tmp_path / "inventory.yml", HOST)
    (tmp_path / "nap.yml").write_text(PLAYBOOK)
    killed_engine(ENGINE, str(tmp_path), ident, str(nap), timeout=90)
    assert (tmp_path / "marker").exists(), "the playbook never started"


@pytest.fixture
def cleanup() -> Iterator[list[str]]:
    """Idents whose leftover processes are killed at the end, whatever the test did."""
    idents: list[str] = []
    yield idents
    for ident in idents:
        for proc in processes_naming(ident):
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except (ProcessLookupError, PermissionError):
                proc.kill()


def test_a_run_that_ended_before_its_engine_recorded_it_gets_its_real_result(
    recorder: Recorder, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    ident = f"20261201T000000-nap-{secrets.token_hex(4)}"  # parallel runs apart
    incident, decision, run_id = _record_run(recorder, tmp_path, ident)
    _engine_dies_mid_run(tmp_path, ident, nap=0)  # between the run's end and its record

    (found,) = reconcile_runs(
        recorder, HostLocks(tmp_path / "locks"), _Scratch(tmp_path / "scratch")
    )
    assert found.run_id == run_id and found.result is not None and not found.leftovers
    assert found.result.status == "successful" and found.result.stats[HOST].ok == 2
    assert recorder.runs.recover_interrupted(10.0, only={run_id}) == []  # it ended
    with sessions() as session:
        run = session.get_one(PlaybookRun, run_id)
        assert run.status == "successful"
        assert "finished while the engine was down" in (run.error or "")
        # Its effect on the host is still to be verified on fresh data.
        assert session.get_one(Decision, decision).outcome == "unverified"
        assert session.get_one(Incident, incident).status == IncidentStatus.OPEN


def test_a_playbook_left_behind_is_waited_for_and_its_run_stays_interrupted(
    recorder: Recorder, tmp_path: Path, cleanup: list[str]
) -> None:
    # Its engine gone, the playbook dies at its next output (its terminal is gone): it
    # never writes a recap, so what it did stays unknown.
    ident = f"20261201T000000-nap-{secrets.token_hex(4)}"  # parallel runs apart
    cleanup.append(ident)
    _, _, run_id = _record_run(recorder, tmp_path, ident)
    _engine_dies_mid_run(tmp_path, ident, nap=2)
    assert processes_naming(ident), "the run did not outlive its engine: nothing to reconcile"
    scratch = tmp_path / "scratch" / ident
    assert SECRET in (scratch / "vars.yml").read_text()

    started = time.monotonic()
    (found,) = reconcile_runs(
        recorder, HostLocks(tmp_path / "locks"), _Scratch(tmp_path / "scratch")
    )
    assert time.monotonic() - started < 20
    assert found.result is None
    (line,) = found.leftovers
    assert "left by the engine ended within" in line
    assert not processes_naming(ident) and not scratch.exists()
    assert recorder.runs.recover_interrupted(10.0, only={run_id}) == [run_id]


def test_a_run_still_going_is_stopped_and_stays_interrupted_not_failed(
    recorder: Recorder, sessions: sessionmaker[Session], tmp_path: Path, cleanup: list[str]
) -> None:
    ident = f"20261201T000000-nap-{secrets.token_hex(4)}"  # parallel runs apart
    cleanup.append(ident)
    incident, decision, run_id = _record_run(recorder, tmp_path, ident)
    nap = 600 + secrets.randbelow(100_000)  # tells its `sleep` from a parallel test's
    _engine_dies_mid_run(tmp_path, ident, nap=nap)
    left = processes_naming(ident)
    assert left

    (found,) = reconcile_runs(
        recorder, HostLocks(tmp_path / "locks"), _Scratch(tmp_path / "scratch"), wait=1.0
    )
    assert found.result is None
    assert "still ran after 1s: stopped" in found.leftovers[0]
    _gone, alive = psutil.wait_procs(left, timeout=10)
    assert not alive and not processes_naming(ident), "an orphan of the run survived"
    napping = ["sleep", str(nap)]
    sleeps = [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == napping]
    assert not sleeps, "the nap Ansible started on the host survived its playbook"
    assert not (tmp_path / "scratch" / ident).exists()

    assert recorder.runs.recover_interrupted(10.0, only={found.run_id}) == [run_id]
    history = recorder.memory.host_history(HOST, since=0.0)
    (attempt,) = history.attempts
    assert attempt.succeeded is None, "an interrupted run counted as a failed attempt"
    (active,) = recorder.memory.active_incidents()
    assert (active.tried, active.interrupted) == ([], ["nap"])
    with sessions() as session:
        assert session.get_one(PlaybookRun, run_id).status == "interrupted"
        assert session.get_one(Decision, decision).outcome == "interrupted"
        assert session.get_one(Incident, incident).status == IncidentStatus.OPEN


def test_a_run_whose_owner_lives_is_left_alone(
    recorder: Recorder, sessions: sessionmaker[Session], tmp_path: Path
) -> None:
    ident = f"20261201T000000-nap-{secrets.token_hex(4)}"  # parallel runs apart
    _, _, run_id = _record_run(recorder, tmp_path, ident)
    scratch = tmp_path / "scratch" / ident
    scratch.mkdir(parents=True)
    locks = HostLocks(tmp_path / "locks")
    by_hand = locks.acquire([HOST], "manual run by otto")  # another process's live run
    try:
        assert reconcile_runs(recorder, locks, _Scratch(tmp_path / "scratch"), wait=0.1) == []
    finally:
        by_hand.release()
    assert scratch.exists()
    with sessions() as session:
        assert session.get_one(PlaybookRun, run_id).status == "running"
