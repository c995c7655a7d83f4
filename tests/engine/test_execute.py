"""The ansible-runner executor, with real tiny playbooks run against localhost."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import psutil
import pytest

from engine.execute import REDACTED, AnsibleRunnerExecutor, read_events
from engine.types import RunRequest
from tests.fixtures.ansible import local_inventory

HOST = "localhost"
SLEEP_TASK = "    - ansible.builtin.command: sleep {seconds}\n      changed_when: false\n"


@pytest.fixture
def executor(tmp_path: Path) -> AnsibleRunnerExecutor:
    inventory = local_inventory(tmp_path / "inventory.yml", HOST, "other-host")
    # A killed module leaves its payload dir in TMPDIR: keep those in tmp_path.
    return AnsibleRunnerExecutor(
        runs_dir=tmp_path / "runs", inventory_path=inventory, envvars={"TMPDIR": str(tmp_path)}
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
