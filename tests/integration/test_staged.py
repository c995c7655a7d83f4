"""Staged runs against this machine's real nginx, through the real executor: the preflight
runs before the verdict, nothing changes until the release, and a run that is discarded, or
whose engine dies while it holds, ends having changed nothing."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import psutil
import pytest

from engine.errors import RefusedError
from engine.execute.runner import AnsibleRunnerExecutor
from engine.execute.staged import StagedRun
from engine.types import RunRequest
from tests.fixtures.ansible import local_executor, local_inventory, task_outcomes, task_started
from tests.fixtures.nginx import NginxService

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


@pytest.fixture
def executor(tmp_path: Path) -> AnsibleRunnerExecutor:
    return local_executor(tmp_path, HOST)


def staged_and_holding(
    executor: AnsibleRunnerExecutor, tmp_path: Path, ident: str
) -> tuple[StagedRun, Path, Path]:
    """A staged restart_nginx run that has reached its hold: the run, its artifact dir and
    the snapshot dir it would write."""
    snapshot = tmp_path / "known-good"
    staged = StagedRun(executor, request(snapshot), ident=ident, hold=60)
    artifacts = tmp_path / "runs" / ident / "artifacts" / ident
    wait_until("the run to hold", lambda: task_started(artifacts, HOLD))
    return staged, artifacts, snapshot


def test_preflight_runs_and_nothing_changes_until_the_release(
    nginx_service: NginxService, executor: AnsibleRunnerExecutor, tmp_path: Path
) -> None:
    old = nginx_service.pid()
    staged, artifacts, snapshot = staged_and_holding(executor, tmp_path, "staged-1")
    time.sleep(1.0)  # holding: give a wrong playbook every chance to go on
    assert task_outcomes(artifacts, PREFLIGHT) == ["runner_on_ok"]
    assert not task_started(artifacts, RESTART)
    assert nginx_service.pid() == old
    assert not snapshot.exists()

    assert staged.release()
    assert not staged.discard(), "a run is answered once"
    result = staged.result(timeout=120)
    assert result is not None and result.host_succeeded(HOST), result
    assert nginx_service.wait_for_new_pid(old) != old
    assert (snapshot / "nginx.conf").exists()


def test_a_discarded_run_ends_at_the_hold_having_changed_nothing(
    nginx_service: NginxService, executor: AnsibleRunnerExecutor, tmp_path: Path
) -> None:
    old = nginx_service.pid()
    staged, artifacts, snapshot = staged_and_holding(executor, tmp_path, "staged-2")
    assert staged.discard()
    result = staged.result(timeout=120)
    assert result is not None and result.status == "successful", result
    assert result.stats[HOST].changed == 0
    assert not task_started(artifacts, RESTART)
    assert nginx_service.pid() == old
    assert not snapshot.exists()


ENGINE = """
import os, signal, sys, time
from pathlib import Path
from engine.errors import RefusedError
from engine.execute.runner import AnsibleRunnerExecutor
from engine.execute.staged import StagedRun
from engine.types import RunRequest
tmp = Path(sys.argv[1])
executor = AnsibleRunnerExecutor(runs_dir=tmp / "runs", inventory_path=tmp / "inventory.yml")
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
    engine = subprocess.run(
        [sys.executable, "-c", ENGINE, str(tmp_path), playbook],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert engine.returncode == -signal.SIGKILL, engine.stderr
    events = tmp_path / "runs" / "staged-3" / "artifacts" / "staged-3" / "job_events"
    assert any("Hold until" in p.read_text() for p in events.glob("*.json")), "never held"

    def leftovers() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            if any("staged-3" in part for part in proc.info["cmdline"] or []):
                found.append(proc)
        return found

    # Whatever is left of the run ends by itself: the hold times out (3 s) and fails.
    wait_until("the orphaned run to end", lambda: not leftovers(), timeout=30)
    assert nginx_service.pid() == old
    assert nginx_service.running()
    assert not (tmp_path / "known-good").exists()
