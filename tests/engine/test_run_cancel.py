"""Cancelling a run in flight through the store: the request (engine/record/run_cancel.py),
the watch that reads it in the process running the run (engine/execute/cancel_watch.py),
and real runs stopped by it: by hand, and the engine's own seen from another process."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest
from sqlalchemy import event

from autosre.cli import main
from engine.components import Components
from engine.execute.awx import AwxExecutor
from engine.execute.awx_client import AwxClient
from engine.execute.by_hand import run_by_hand
from engine.execute.cancel_watch import CancelWatch, watch_for
from engine.execute.dispatch import RunDispatcher
from engine.loop import Engine
from engine.plan.rules import RulesPlanner
from engine.policy.schema import Policy
from engine.read.runs import cancel_state
from engine.record.recorder import Recorder
from engine.record.run_cancel import CancelError, request_cancel
from engine.settings import load_settings
from engine.types import RunRequest, RunResult
from tests.fixtures.ansible import processes_naming
from tests.fixtures.fake_awx import FakeAwx, Template
from tests.fixtures.reads import incident_detail, list_incidents, list_runs
from tests.fixtures.scripted import ScriptedSource, SkewClock

NAP = "47.3"  # the slow playbook's sleep: unique, so its processes can be found
SLOW = (
    "- name: Take long\n  hosts: all\n  gather_facts: false\n  tasks:\n"
    f"    - name: Nap\n      ansible.builtin.command:\n        argv: [sleep, '{NAP}']\n"
    "      changed_when: false\n"
)
OK = (
    "- name: Succeed\n  hosts: all\n  gather_facts: false\n  tasks:\n"
    "    - name: Say ok\n      ansible.builtin.debug:\n        msg: ok\n"
)
POLICY = """
detection:
  high_cpu: {trigger: 80, clear: 50, window: 1s, sustain: 0s, step: 1s, stale_after: 3s}
actions:
  slow_fix: {playbook: slow.yml, description: takes long, timeout: 120s}
  quick_fix: {playbook: ok.yml, description: second rung, timeout: 60s}
remediation:
  ladder: [slow_fix, quick_fix]
  cooldown: 1s
  max_attempts: 3
  max_concurrent: 5
  verify_timeout: 20s
"""
# Policies with a trust section (engine/policy/trust.py) run an action on their own only at
# level auto; written only where the schema knows the section.
TRUST = "trust: {actions: {slow_fix: auto, quick_fix: auto}}\n"
INVENTORY = """
all:
  hosts:
    web1: {ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}
"""


def begin(recorder: Recorder, ident: str, *, status: str = "running") -> int:
    """A run recorded as started (not run), then moved to ``status``."""
    request = RunRequest(action="slow_fix", playbook="/x/slow.yml", hosts=("web1",))
    run_id = recorder.runs.begin(
        request, ident=ident, artifact_dir="", trigger="manual", requested_by="op", at=time.time()
    )
    if status != "running":
        result = RunResult(ident, status, 0, "", time.time(), time.time(), {})
        recorder.runs.end(run_id, result)
    return run_id


def audit_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def wait_for(what: str, done: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def live(ident: str, timeout: float = 10.0) -> list[psutil.Process]:
    """The run's live processes (its ident in their command line, or the playbook's sleep)
    after a bounded wait: none once the run is stopped."""
    deadline = time.monotonic() + timeout
    while True:
        found = [
            p
            for p in psutil.process_iter(["cmdline"])
            if p.pid != psutil.Process().pid
            and (p.info["cmdline"] == ["sleep", NAP] or p in processes_naming(ident))
            and _alive(p)
        ]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def napping() -> bool:
    """True once the slow playbook's sleep runs."""
    return any(p.info["cmdline"] == ["sleep", NAP] for p in psutil.process_iter(["cmdline"]))


def threads() -> list[str]:
    return [thread.name for thread in threading.enumerate()]


def _alive(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


# -- the request, on both stores ---------------------------------------------------------


def test_a_request_is_recorded_once_audited_and_names_who_asked(
    recorder: Recorder, audit_path: Path
) -> None:
    run_id = begin(recorder, "cancel-me")

    asked = request_cancel(recorder.journal, run_id, by="alice", at=time.time())
    again = request_cancel(recorder.journal, run_id, by="bob", at=time.time() + 5)

    assert (asked.already, asked.requested_by, asked.status) == (False, "alice", "running")
    # Idempotent: the second changes nothing and answers with the first.
    assert (again.already, again.requested_by) == (True, "alice")
    state = cancel_state(recorder.sessions, run_id)
    assert state is not None
    assert (state.cancel_requested_by, state.status) == ("alice", "running")
    lines = [line for line in audit_lines(audit_path) if line["kind"] == "run_cancel_requested"]
    assert len(lines) == 1
    assert lines[0]["run_id"] == run_id and "alice asked to cancel run cancel-me" in str(
        lines[0]["message"]
    )


def test_an_ended_run_or_no_run_is_refused_and_nothing_changes(
    recorder: Recorder, audit_path: Path
) -> None:
    done = begin(recorder, "done-1", status="successful")

    with pytest.raises(CancelError) as ended:
        request_cancel(recorder.journal, done, by="alice", at=time.time())
    with pytest.raises(CancelError) as missing:
        request_cancel(recorder.journal, 999_999, by="alice", at=time.time())

    assert ended.value.status == 409
    assert "has already ended: successful" in ended.value.message
    assert missing.value.status == 404
    state = cancel_state(recorder.sessions, done)
    assert state is not None and state.cancel_requested_at is None
    assert state.status == "successful"
    assert not [line for line in audit_lines(audit_path) if line["kind"] == "run_cancel_requested"]


def test_one_query_a_round_reads_every_run_in_flight(recorder: Recorder) -> None:
    sessions = recorder.sessions
    for number in range(5):
        begin(recorder, f"run-{number}")
    watch = CancelWatch(sessions, every=3600)  # no second round during the test
    cancels = [watch.add(f"run-{number}") for number in range(5)]
    request_cancel(recorder.journal, 3, by="carol", at=time.time())  # run-2
    statements: list[str] = []
    engine = sessions.kw["bind"]
    me = threading.current_thread()

    def count(*args: object) -> None:
        if threading.current_thread() is me:  # not the watch's own thread's first round
            statements.append(str(args[2]))

    event.listen(engine, "before_cursor_execute", count)
    try:
        assert watch.check() == 1
    finally:
        event.remove(engine, "before_cursor_execute", count)

    assert len([s for s in statements if "playbook_runs" in s]) == 1
    assert [c.event.is_set() for c in cancels] == [False, False, True, False, False]
    assert cancels[2].by == "carol"
    for number in range(5):
        watch.remove(f"run-{number}")
    assert watch.in_flight() == []
    wait_for("the watch's thread to end", lambda: "autosre-cancel-watch" not in threads(), 5)


# -- real runs ---------------------------------------------------------------------------


@pytest.fixture
def parts(tmp_path: Path, store_url: str) -> Iterator[Components]:
    """Components on a store of their own (SQLite, PostgreSQL), with the slow action."""
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "slow.yml").write_text(SLOW)
    (books / "ok.yml").write_text(OK)
    trusted = TRUST if "trust" in Policy.model_fields else ""
    (tmp_path / "policy.yaml").write_text(POLICY + trusted)
    (tmp_path / "inventory.yml").write_text(INVENTORY)
    settings = load_settings(
        {
            "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
            "AUTOSRE_POLICY": str(tmp_path / "policy.yaml"),
            "AUTOSRE_INVENTORY": str(tmp_path / "inventory.yml"),
            "AUTOSRE_PLAYBOOK_DIR": str(books),
            "AUTOSRE_DATABASE_URL": store_url,
        }
    )
    made = Components(settings)
    yield made
    made.close()


def other_process(parts: Components) -> Components:
    """Another process's components over the same store (as the web UI or the CLI): a
    store connection and a watch of their own."""
    return Components(parts.settings)


def test_a_run_by_hand_is_canceled_from_another_process_and_its_processes_are_gone(
    parts: Components,
) -> None:
    started: dict[str, str] = {}
    result: list[RunResult] = []

    def work() -> None:
        result.append(
            run_by_hand(
                parts,
                action="slow_fix",
                hosts=["web1"],
                extra_vars={},
                check=False,
                requested_by="op",
                on_start=lambda ident, _dir: started.setdefault("ident", ident),
            )
        )

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    wait_for("the run to start", lambda: "ident" in started)
    ident = started["ident"]
    wait_for("the playbook's sleep", napping, 30)
    (run,) = list_runs(parts.sessions)
    web = other_process(parts)
    try:
        asked_at = time.monotonic()
        request_cancel(web.recorder.journal, run["id"], by="alice", at=time.time())
        thread.join(15)
        took = time.monotonic() - asked_at
    finally:
        web.close()

    assert not thread.is_alive(), "the run did not stop"
    assert took < 10, took  # a watch round (1 s) and the runner's poll (0.2 s), then the kill
    assert result[0].status == "canceled"
    assert result[0].error == "canceled by alice"
    assert live(ident) == []
    (run,) = list_runs(parts.sessions)
    assert (run["status"], run["error"]) == ("canceled", "canceled by alice")
    assert watch_for(parts.sessions).in_flight() == []


def test_an_engine_run_canceled_through_the_store_escalates_and_is_not_retried(
    parts: Components,
) -> None:
    cpu = {"web1": 95.0}
    clock = SkewClock()
    source = ScriptedSource(lambda host, _t: cpu[host], ("web1",))
    engine = Engine(parts, metrics=source, planner=RulesPlanner(), clock=clock, plan_wait=10)
    web = other_process(parts)
    try:

        def tick() -> None:
            engine.tick()
            clock.advance(1.0)

        deadline = time.monotonic() + 30
        while not list_runs(parts.sessions):
            assert time.monotonic() < deadline, "no run started"
            tick()
        (run,) = list_runs(parts.sessions)
        assert run["action"] == "slow_fix" and run["status"] == "running"
        wait_for("the playbook's sleep", napping, 30)

        request_cancel(web.recorder.journal, run["id"], by="alice", at=time.time())

        def escalated() -> bool:
            tick()
            return list_incidents(parts.sessions)[0]["status"] == "escalated"

        wait_for("the incident to escalate", escalated, 30)
        for _ in range(5):  # still high: nothing runs again behind the person's back
            tick()
        assert engine.wait_idle(5)
    finally:
        engine.shutdown(timeout=30)
        web.close()

    (run,) = list_runs(parts.sessions)  # no second rung, no second run
    assert (run["status"], run["error"]) == ("canceled", "canceled by alice")
    assert live(run["ident"]) == []
    (incident,) = list_incidents(parts.sessions)
    detail = incident_detail(parts.sessions, incident["id"])
    assert detail is not None
    timeline = [(e["kind"], e["message"]) for e in detail["timeline"]]
    assert any(k == "run_cancel_requested" and "alice asked" in m for k, m in timeline)
    assert any("slow_fix on web1 stopped: canceled by alice; not retried" in m for _, m in timeline)


# -- the CLI -----------------------------------------------------------------------------


@pytest.fixture
def cli_env(parts: Components, monkeypatch: pytest.MonkeyPatch) -> Components:
    """The CLI's environment: the same store, policy and inventory as ``parts``."""
    settings = parts.settings
    for name, value in {
        "AUTOSRE_DATA_DIR": settings.data_dir,
        "AUTOSRE_POLICY": settings.policy,
        "AUTOSRE_INVENTORY": settings.inventory,
        "AUTOSRE_PLAYBOOK_DIR": settings.playbook_dir,
        "AUTOSRE_DATABASE_URL": settings.database_url,
    }.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.setenv("SUDO_USER", "dave")
    return parts


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(["runs", "cancel", *argv])
    except SystemExit as exc:  # argparse exits on usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


SQLITE_ONLY = pytest.mark.parametrize("store_url", ["sqlite"], indirect=True)  # the CLI's part


@SQLITE_ONLY
@pytest.mark.parametrize("argv", [[], ["abc"], ["0"], ["-3"], ["2147483648"], ["1", "--wait", "0"]])
def test_the_cli_refuses_what_is_no_run_id_with_exit_2(
    cli_env: Components, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, _, err = cli(capsys, *argv)
    assert code == 2 and "error:" in err and "Traceback" not in err


@SQLITE_ONLY
def test_the_cli_asks_once_names_who_and_refuses_an_ended_run(
    cli_env: Components, capsys: pytest.CaptureFixture[str]
) -> None:
    recorder = cli_env.recorder
    running = begin(recorder, "cli-run")
    ended = begin(recorder, "cli-done", status="failed")

    assert cli(capsys, str(running))[:2] == (
        0,
        f"run {running} (cli-run): cancel requested; it stops within seconds\n",
    )
    code, out, _ = cli(capsys, str(running))
    assert code == 0 and "dave asked at" in out  # idempotent: nothing new
    code, out, _ = cli(capsys, str(running), "--wait", "0.5")  # nothing runs it here
    assert code == 1 and "is still running after 0.5s" in out
    code, _, err = cli(capsys, str(ended))
    assert code == 2 and f"run {ended} (cli-done) has already ended: failed" in err
    code, _, err = cli(capsys, "99999")
    assert code == 2 and "no run with id 99999" in err
    state = cancel_state(cli_env.sessions, running)
    assert state is not None and state.cancel_requested_by == "dave"
    state = cancel_state(cli_env.sessions, ended)
    assert state is not None and state.cancel_requested_at is None


# -- AWX: the controller's job is canceled -------------------------------------------------


def test_an_awx_job_is_canceled_on_the_controller_when_a_person_asks(
    fake_awx: FakeAwx, recorder: Recorder, tmp_path: Path
) -> None:
    fake_awx.add_template(3, Template("Run forever", outcome="endless"))
    client = AwxClient(fake_awx.url, fake_awx.token, timeout=2.0)
    awx = AwxExecutor(
        client, templates={"run_forever": 3}, runs_dir=tmp_path / "runs", poll_interval=0.05
    )
    dispatcher = RunDispatcher(executor=awx, recorder=recorder, workers=1)
    request = RunRequest(action="run_forever", playbook="/x/forever.yml", hosts=("web1",))
    run_id = recorder.runs.begin(
        request, ident="awx-1", artifact_dir="", trigger="engine", requested_by="engine", at=0.0
    )
    try:
        dispatcher.start(request, ident="awx-1", run_id=run_id, locks=[])
        wait_for("the job to launch", lambda: bool(fake_awx.launched()), 10)
        request_cancel(recorder.journal, run_id, by="alice", at=time.time())
        assert dispatcher.wait_idle(15)
    finally:
        dispatcher.shutdown(cancel_runs=True, timeout=10)

    assert fake_awx.cancels(1) == 1 and fake_awx.jobs[1].status == "canceled"
    ((host, result, action),) = dispatcher.finished()
    assert (host, result.status, action) == ("web1", "canceled", "run_forever")
    assert result.error is not None and result.error.startswith("canceled by alice (AWX job 1")
    state = cancel_state(recorder.sessions, run_id)
    assert state is not None and state.status == "canceled"
