"""The ansible-runner executor, with real tiny playbooks run against localhost."""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from engine.components import Components
from engine.errors import HostBusyError, StoreError
from engine.execute.by_hand import run_by_hand
from engine.execute.launch import Decided
from engine.execute.results import read_events
from engine.execute.runner import AnsibleRunnerExecutor
from engine.execute.vars_file import vars_yaml
from engine.loop import Engine
from engine.plan.rules import RulesPlanner
from engine.policy.whitelist import build_request
from engine.redact import REDACTED, Redactor, encodings
from engine.settings import load_settings
from engine.store import open_store
from engine.types import RunRequest, RunResult
from tests.fixtures.ansible import local_inventory
from tests.fixtures.reads import incident_detail, list_incidents, list_runs
from tests.fixtures.scripted import ScriptedSource
from tests.fixtures.store import migrated_sqlite

HOST = "localhost"
TEST_PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"
SLEEP_TASK = "    - ansible.builtin.command: sleep {seconds}\n      changed_when: false\n"


@pytest.fixture
def executor(tmp_path: Path) -> AnsibleRunnerExecutor:
    inventory = local_inventory(tmp_path / "inventory.yml", HOST, "other-host")
    # A killed module leaves its payload dir in TMPDIR: keep those in tmp_path.
    return AnsibleRunnerExecutor(
        runs_dir=tmp_path / "runs",
        inventory_path=inventory,
        envvars={"TMPDIR": str(tmp_path)},
        scratch_dir=tmp_path / "scratch",
    )


def playbook(tmp_path: Path, tasks: str) -> str:
    path = tmp_path / "play.yml"
    path.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}")
    return str(path)


def request(path: str, **kwargs: object) -> RunRequest:
    return RunRequest(action="test", playbook=path, hosts=(HOST,), **kwargs)  # type: ignore[arg-type]


def sleepers(seconds: str, wait: float = 2.0) -> list[psutil.Process]:
    """Live `sleep <seconds>` processes still there after a short bounded wait."""
    deadline = time.monotonic() + wait
    while True:
        found = [
            proc
            for proc in psutil.process_iter(["cmdline", "status"])
            if (proc.info["cmdline"] or [])[:2] == ["sleep", seconds]
            and proc.info["status"] != psutil.STATUS_ZOMBIE
        ]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_successful_run_reports_stats_and_artifacts(
    executor: AnsibleRunnerExecutor, tmp_path: Path
) -> None:
    path = playbook(tmp_path, "    - ansible.builtin.debug:\n        msg: hi\n")

    result = executor.run(request(path), ident="ok-1")

    assert (result.status, result.rc, result.error) == ("successful", 0, None)
    assert result.host_succeeded(HOST)
    assert result.stats[HOST].ok == 1
    assert "other-host" not in result.stats  # --limit kept the run to the requested host
    assert result.started_at <= result.ended_at
    artifacts = Path(result.artifact_dir)
    assert artifacts == tmp_path / "runs" / "ok-1" / "artifacts" / "ok-1"
    for name in ("command", "stdout", "status", "rc"):
        assert (artifacts / name).is_file()
    counters = [event["counter"] for event in read_events(artifacts)]
    assert counters == sorted(counters) and len(counters) >= 4
    assert read_events(artifacts)[-1]["event"] == "playbook_on_stats"


def test_failing_task_is_a_failed_run(executor: AnsibleRunnerExecutor, tmp_path: Path) -> None:
    path = playbook(tmp_path, "    - ansible.builtin.fail:\n        msg: boom\n")

    result = executor.run(request(path), ident="fail-1")

    assert result.status == "failed"
    assert result.rc not in (None, 0)
    assert result.stats[HOST].failures == 1
    assert not result.host_succeeded(HOST)


def test_timeout_stops_the_run(executor: AnsibleRunnerExecutor, tmp_path: Path) -> None:
    path = playbook(tmp_path, SLEEP_TASK.format(seconds="41.7"))

    started = time.monotonic()
    result = executor.run(request(path, timeout=2), ident="timeout-1")

    assert result.status == "timeout"
    assert 2 <= time.monotonic() - started < 15
    assert not sleepers("41.7")  # the playbook's process group was killed


def test_cancel_event_stops_the_run(executor: AnsibleRunnerExecutor, tmp_path: Path) -> None:
    path = playbook(tmp_path, SLEEP_TASK.format(seconds="42.3"))
    cancel = threading.Event()
    timer = threading.Timer(1.0, cancel.set)

    started = time.monotonic()
    timer.start()
    try:
        result = executor.run(request(path), ident="cancel-1", cancel=cancel)
    finally:
        timer.cancel()

    assert result.status == "canceled"
    assert time.monotonic() - started < 15
    assert not sleepers("42.3")


def test_secret_values_never_reach_the_run_dir(
    executor: AnsibleRunnerExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "tok-SECRET/xyz-9731"
    # runner copies the process environment into the `command` artifact
    monkeypatch.setenv("AUTOSRE_TEST_API_KEY", "env-secret-5519")
    out = tmp_path / "greeting.txt"
    path = playbook(
        tmp_path,
        "    - ansible.builtin.debug:\n        msg: 'token is {{ api_token }}'\n"
        f"    - ansible.builtin.copy:\n        dest: {out}\n"
        "        content: '{{ greeting }}'\n        mode: '0600'\n",
    )
    extra = {"greeting": "hello-public-42", "api_token": secret}

    result = executor.run(
        request(path, extra_vars=extra, secret_vars=frozenset({"api_token"})), ident="secret-1"
    )

    assert result.status == "successful", result
    assert out.read_text() == "hello-public-42"  # the non-secret var was used
    run_dir = tmp_path / "runs" / "secret-1"
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert files
    for file in files:
        content = file.read_bytes()
        assert secret.encode() not in content, file
        assert b"env-secret-5519" not in content, file
    assert not (run_dir / "env" / "extravars").exists()
    assert f"token is {REDACTED}" in (Path(result.artifact_dir) / "stdout").read_text()
    command = json.loads((Path(result.artifact_dir) / "command").read_text())["command"]
    vars_file = Path(command[command.index("-e") + 1].removeprefix("@"))
    assert not vars_file.exists()  # the 0600 vars file is gone after the run
    assert run_dir not in vars_file.parents


def test_check_mode_passes_check_flag(executor: AnsibleRunnerExecutor, tmp_path: Path) -> None:
    path = playbook(
        tmp_path,
        "    - ansible.builtin.assert:\n        that: ansible_check_mode\n",
    )

    result = executor.run(request(path, check=True), ident="check-1")

    assert result.status == "successful", result


@pytest.mark.parametrize(
    ("ident", "hosts", "message"),
    [("../escape", (HOST,), "invalid run ident"), ("no-hosts", (), "no hosts")],
)
def test_invalid_requests_are_errors_not_runs(
    executor: AnsibleRunnerExecutor,
    tmp_path: Path,
    ident: str,
    hosts: tuple[str, ...],
    message: str,
) -> None:
    path = playbook(tmp_path, "    - ansible.builtin.debug:\n        msg: hi\n")
    bad = RunRequest(action="test", playbook=path, hosts=hosts)

    result = executor.run(bad, ident=ident)

    assert result.status == "error"
    assert message in (result.error or "")
    assert not (tmp_path / "runs").exists()


def test_reused_ident_is_an_error(executor: AnsibleRunnerExecutor, tmp_path: Path) -> None:
    path = playbook(tmp_path, "    - ansible.builtin.debug:\n        msg: hi\n")
    assert executor.run(request(path), ident="same").status == "successful"

    result = executor.run(request(path), ident="same")

    assert result.status == "error"
    assert "same" in (result.error or "")


# -- the child's environment ---------------------------------------------------------


def test_ansible_gets_an_allow_listed_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canaries = {
        "GEMINI_API_KEY": "gemini-env-canary-1",
        "AUTOSRE_SECRET_KEY": "session-env-canary-2" * 2,
        "NOT_DECLARED": "undeclared-env-canary-3",
    }
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PASS_ME_THROUGH", "declared-value-4")
    inventory = local_inventory(tmp_path / "inventory.yml", HOST)
    executor = AnsibleRunnerExecutor(
        runs_dir=tmp_path / "runs", inventory_path=inventory, scratch_dir=tmp_path / "scratch"
    )
    out = tmp_path / "out"
    out.mkdir()
    run = RunRequest(
        action="test",
        playbook=str(TEST_PLAYBOOKS / "env_probe.yml"),
        hosts=(HOST,),
        extra_vars={"out_dir": str(out)},
        # An engine variable named here still never passes (the policy refuses it too).
        env=("PASS_ME_THROUGH", "AUTOSRE_SECRET_KEY"),
    )

    result = executor.run(run, ident="env-1")

    assert result.status == "successful", result
    module_env = dict(
        line.split("=", 1) for line in (out / "module.env").read_text().splitlines() if "=" in line
    )
    assert module_env["PASS_ME_THROUGH"] == "declared-value-4"
    assert module_env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert "HOME" in module_env
    assert not [name for name in module_env if name.startswith("AUTOSRE_")]
    controller = (out / "controller.env").read_text()
    assert "declared-value-4" in controller
    command = json.loads((Path(result.artifact_dir) / "command").read_text())
    for name, value in canaries.items():
        assert name not in module_env
        assert value not in controller
        assert name not in command["env"]


# -- extra vars are data ------------------------------------------------------------


class _UnsafeLoader(yaml.SafeLoader):
    """Reads ``!unsafe`` as Ansible does for the value's text: a plain string."""


def _unsafe_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


_UnsafeLoader.add_constructor("!unsafe", _unsafe_text)


@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True), st.text()))
@example({"_": "!unsafe"})  # a value that spells the tag is still one tagged value
def test_vars_file_reads_back_exactly_and_every_value_is_unsafe(values: dict[str, str]) -> None:
    text = vars_yaml(values)
    assert text.isascii()
    document = yaml.compose(text, Loader=yaml.SafeLoader)
    assert isinstance(document, yaml.MappingNode)
    assert len(document.value) == len(values)
    assert all(value.tag == "!unsafe" for _, value in document.value)
    assert yaml.load(text, Loader=_UnsafeLoader) == values


def test_extra_vars_are_never_templated(executor: AnsibleRunnerExecutor, tmp_path: Path) -> None:
    canary = tmp_path / "templated-canary"
    values = ["{{ 7*7 }}", f"{{{{ lookup('pipe','touch {canary}') }}}}", "{% raw %}x"]
    for number, value in enumerate(values):
        dest = tmp_path / f"out-{number}.txt"
        run = RunRequest(
            action="test",
            playbook=str(TEST_PLAYBOOKS / "write_var.yml"),
            hosts=(HOST,),
            extra_vars={"v": value, "dest": str(dest)},
        )

        result = executor.run(run, ident=f"unsafe-{number}")

        assert result.status == "successful", result
        assert dest.read_text() == value
    assert not canary.exists()


# -- redaction while the run is live --------------------------------------------------


def test_events_and_stdout_are_redacted_before_they_reach_the_run_dir(
    tmp_path: Path,
) -> None:
    secret = 'qx"var\\sec-8812'
    inventory = local_inventory(tmp_path / "inventory.yml", HOST)
    executor = AnsibleRunnerExecutor(
        runs_dir=tmp_path / "runs",
        inventory_path=inventory,
        redactor=Redactor(["engine-known-5521"]),
        scratch_dir=tmp_path / "scratch",
    )
    path = playbook(
        tmp_path,
        "    - ansible.builtin.debug:\n        msg: 'token {{ token }} engine-known-5521'\n"
        + SLEEP_TASK.format(seconds="1.5"),
    )
    run = request(path, extra_vars={"token": secret}, secret_vars=frozenset({"token"}))
    run_dir = tmp_path / "runs" / "live-1"
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(executor.run(run, ident="live-1")))
    seen: list[str] = []

    thread.start()
    while thread.is_alive():
        for file in (p for p in run_dir.rglob("*") if p.is_file()):
            try:
                seen.append(file.read_text(errors="replace"))
            except FileNotFoundError:
                continue  # renamed by runner between listing and reading
        time.sleep(0.02)
    thread.join()

    assert results[0].status == "successful", results[0]
    content = "\n".join(seen)
    assert f"token {REDACTED} {REDACTED}" in content  # the live output was seen, redacted
    forms = encodings(secret) | encodings("engine-known-5521")
    assert not [form for form in forms if form in content]
    assert not list(run_dir.rglob("*-partial.json"))


def test_a_batch_works_on_all_its_hosts_at_once_and_names_each_failure(
    executor: AnsibleRunnerExecutor, tmp_path: Path
) -> None:
    # Ansible's default of 5 forks would make a batch of many hosts go round by round.
    path = playbook(
        tmp_path, "    - ansible.builtin.fail:\n        msg: boom on {{ inventory_hostname }}\n"
    )
    both = RunRequest(action="test", playbook=path, hosts=(HOST, "other-host"))

    result = executor.run(both, ident="batch-1")

    command = json.loads((Path(result.artifact_dir) / "command").read_text())
    forks = command["command"][command["command"].index("--forks") + 1]
    assert forks == "2"
    assert result.host_errors == {
        HOST: f"failed at task 'ansible.builtin.fail': boom on {HOST}",
        "other-host": "failed at task 'ansible.builtin.fail': boom on other-host",
    }


# -- the engine's runs when the store fails (PostgreSQL outages: tests/integration/
# test_store_outage.py). Here the SQLite store loses the runs' table: a real OperationalError.

OUTAGE_POLICY = """
version: 2
signals:
  high_cpu:
    query: 'unused: the test feeds the samples'
    trigger: 80
    clear: 50
    window: 1s
    sustain: 2s
    step: 1s
    stale_after: 3s
    ladder: [quick_fix]
actions:
  quick_fix: {playbook: quick_fix.yml, description: says ok, timeout: 60s}
trust: {actions: {quick_fix: auto}}
remediation:
  cooldown: 1h
  max_attempts: 1
"""
# A release point (engine/execute/staged.py) makes the action stageable.
QUICK_FIX = """- name: Quick fix
  hosts: all
  gather_facts: false
  tasks:
    - name: End here unless released
      ansible.builtin.meta: end_host
      when: autosre_release_file is defined and false
    - name: Say ok
      ansible.builtin.debug:
        msg: ok
"""


@dataclass(frozen=True)
class StoreLab:
    """An engine on an SQLite store, and the CPU its one host shows."""

    engine: Engine
    cpu: dict[str, float]


@pytest.fixture
def store_lab(tmp_path: Path) -> Iterator[StoreLab]:
    """An engine on an SQLite store, one local host and the quick_fix action."""
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "quick_fix.yml").write_text(QUICK_FIX)
    (tmp_path / "policy.yaml").write_text(OUTAGE_POLICY)
    settings = load_settings(
        {
            "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
            "AUTOSRE_POLICY": str(tmp_path / "policy.yaml"),
            "AUTOSRE_INVENTORY": str(local_inventory(tmp_path / "inventory.yml", "web1")),
            "AUTOSRE_PLAYBOOK_DIR": str(books),
        }
    )
    components = Components(settings, sessions=open_store(migrated_sqlite(tmp_path / "a.db")))
    cpu = {"web1": 20.0}
    source = ScriptedSource(lambda host, _t: cpu[host], ("web1",))
    engine = Engine(components, metrics=source, planner=RulesPlanner())
    yield StoreLab(engine, cpu)
    engine.shutdown(timeout=30)
    components.close()


@contextmanager
def table_away(engine: Engine, table: str = "playbook_runs") -> Iterator[None]:
    """The store cannot write the table's rows (it is gone) until the block ends."""
    sessions = engine.components.sessions
    with sessions() as session:
        session.execute(text(f"ALTER TABLE {table} RENAME TO {table}_away"))
        session.commit()
    try:
        yield
    finally:
        with sessions() as session:
            session.execute(text(f"ALTER TABLE {table}_away RENAME TO {table}"))
            session.commit()


def host_free(engine: Engine, host: str) -> bool:
    try:
        engine.components.locks.acquire([host], "the test").release()
    except HostBusyError:
        return False
    return True


def test_a_run_whose_start_cannot_be_recorded_frees_its_host(store_lab: StoreLab) -> None:
    engine, now = store_lab.engine, time.time()
    incident = engine.recorder.incidents.open(
        "web1", "high_cpu", 95.0, "cpu 95%", at=now, since=now
    )
    with table_away(engine), pytest.raises(OperationalError):
        engine.launcher.launch("quick_fix", [Decided("web1", incident, 0)], now)
    assert host_free(engine, "web1")
    assert not engine.busy() and not (engine.components.settings.runs_dir).exists()


def test_a_staged_run_whose_start_cannot_be_recorded_frees_its_host(store_lab: StoreLab) -> None:
    engine, now = store_lab.engine, time.time()
    assert engine.stager.first_rungs == {"high_cpu": "quick_fix"}
    with table_away(engine), pytest.raises(OperationalError):
        engine.stager.stage("web1", "high_cpu", now - 1.0, now)
    assert host_free(engine, "web1")
    assert not engine.stager.busy() and not (engine.components.settings.runs_dir).exists()


def test_a_run_end_the_store_cannot_take_is_kept_until_it_can(
    store_lab: StoreLab, caplog: pytest.LogCaptureFixture
) -> None:
    engine, now = store_lab.engine, time.time()
    caplog.set_level(logging.INFO, logger="autosre.engine")
    settings = engine.components.settings
    request = build_request(
        engine.policy, engine.inventory, settings.playbook_dir, action="quick_fix", hosts=["web1"]
    )
    run_id = engine.recorder.runs.begin(
        request, ident="kept-1", artifact_dir="", trigger="engine", requested_by="engine", at=now
    )
    with table_away(engine):
        engine.runs.start(request, ident="kept-1", run_id=run_id, locks=[])
        assert engine.runs.wait_idle(60)
        for _ in range(5):  # the tick hears nothing of a run whose end is not recorded
            assert engine.runs.finished() == []
        assert engine.runs.pending() == 1
    (kept,) = [r for r in caplog.records if "cannot be recorded" in r.getMessage()]
    assert kept.levelno == logging.WARNING and kept.exc_info is None
    assert "no such table" in kept.getMessage()

    ((host, result, action),) = engine.runs.finished()  # the store takes it now
    assert (host, result.status, action) == ("web1", "successful", "quick_fix")
    assert engine.runs.pending() == 0 and engine.runs.finished() == []
    (run,) = list_runs(engine.components.sessions)
    assert (run["ident"], run["status"]) == ("kept-1", "successful")
    (recorded,) = [r for r in caplog.records if "recorded at last" in r.getMessage()]
    assert "after 6 failed attempt(s)" in recorded.getMessage()
    assert (
        len([r for r in caplog.records if "kept-1" in r.getMessage()]) == 3
    )  # ended, kept, recorded


def test_at_shutdown_a_kept_end_is_tried_once_more(
    store_lab: StoreLab, caplog: pytest.LogCaptureFixture
) -> None:
    engine, now = store_lab.engine, time.time()
    caplog.set_level(logging.INFO, logger="autosre.engine")
    settings = engine.components.settings
    request = build_request(
        engine.policy, engine.inventory, settings.playbook_dir, action="quick_fix", hosts=["web1"]
    )
    ends = []
    for ident in ("last-1", "last-2"):
        run_id = engine.recorder.runs.begin(
            request, ident=ident, artifact_dir="", trigger="engine", requested_by="engine", at=now
        )
        ends.append((ident, run_id))
    with table_away(engine):
        for ident, run_id in ends:
            engine.runs.start(request, ident=ident, run_id=run_id, locks=[])
            assert engine.runs.wait_idle(60)
        engine.runs.shutdown(cancel_runs=False, timeout=5)  # still away: both told, not lost
        lost = [r for r in caplog.records if "its end is not recorded" in r.getMessage()]
        assert len(lost) == 2 and not [r for r in caplog.records if r.exc_info]
        assert engine.runs.pending() == 2
    engine.runs.shutdown(cancel_runs=False, timeout=5)  # back: the last try records them
    assert {r["status"] for r in list_runs(engine.components.sessions)} == {"successful"}
    assert engine.runs.pending() == 0


def test_a_decision_that_cannot_be_recorded_starts_no_run(store_lab: StoreLab) -> None:
    engine = store_lab.engine
    store_lab.cpu["web1"] = 95.0
    with table_away(engine, "decisions"), pytest.raises(OperationalError):
        engine.tick()  # the incident opens; its verdict, to run, cannot be recorded
    (incident,) = list_incidents(engine.components.sessions)
    assert incident["status"] == "open"
    assert not engine.busy() and host_free(engine, "web1")
    assert list_runs(engine.components.sessions) == []
    assert not engine.components.settings.runs_dir.exists()

    engine.tick()  # the store takes it now: decided, recorded, then run (once)
    assert engine.wait_idle(60)
    (run,) = list_runs(engine.components.sessions)
    assert run["status"] == "successful", run
    detail = incident_detail(engine.components.sessions, incident["id"])
    assert detail is not None
    assert [d["run_id"] for d in detail["decisions"]] == [run["id"]]


def test_a_run_by_hand_whose_start_cannot_be_recorded_says_so_and_frees_its_host(
    store_lab: StoreLab,
) -> None:
    engine = store_lab.engine
    with table_away(engine), pytest.raises(StoreError, match="start cannot be recorded") as err:
        run_by_hand(
            engine.components,
            action="quick_fix",
            hosts=["web1"],
            extra_vars={},
            check=False,
            requested_by="ada",
        )
    assert "\n" not in str(err.value) and "no such table" in str(err.value)
    assert host_free(engine, "web1")
    assert not engine.components.settings.runs_dir.exists()


def test_a_run_by_hand_that_cannot_start_after_its_record_is_recorded_as_not_run(
    store_lab: StoreLab,
) -> None:
    engine = store_lab.engine

    def on_start(_ident: str, _run_dir: str) -> None:
        raise OSError("the terminal went away")

    with pytest.raises(OSError, match="terminal"):
        run_by_hand(
            engine.components,
            action="quick_fix",
            hosts=["web1"],
            extra_vars={},
            check=False,
            requested_by="ada",
            on_start=on_start,
        )
    (run,) = list_runs(engine.components.sessions)
    assert run["status"] == "error" and "not run: the terminal went away" in run["error"], run
    assert host_free(engine, "web1")
    assert not engine.components.settings.runs_dir.exists()
