"""Playbooks by hand: the same whitelist, inventory check, lock and record as the engine."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from engine.execute.locks import HostLocks
from tests.integration.harness import AUTOSRE, Store, lab_env

pytestmark = pytest.mark.integration


def autosre(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(AUTOSRE), *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    # No Prometheus is needed to run a playbook by hand; the URL is never queried.
    return lab_env(tmp_path, "http://127.0.0.1:9")


def test_restart_by_hand_restarts_nginx_and_is_recorded(
    env: dict[str, str], tmp_path: Path, nginx_service: Any
) -> None:
    old = nginx_service.pid()
    done = autosre(
        env,
        "playbook",
        "run",
        "restart_nginx",
        "--limit",
        "web1",
        "-e",
        "nginx_health_url=http://127.0.0.1/",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "successful" in done.stdout
    nginx_service.wait_for_new_pid(old, timeout=5)
    nginx_service.wait_until_answering()
    store = Store(tmp_path / "data")
    runs = store.runs()
    store.close()
    assert len(runs) == 1
    run = runs[0]
    assert (run["action"], run["trigger"], run["status"], run["hosts"]) == (
        "restart_nginx",
        "manual",
        "successful",
        ["web1"],
    )
    assert run["extra_var_names"] == ["nginx_health_url"]
    assert run["stats"]["web1"]["failures"] == 0
    assert Path(run["artifact_dir"]).is_dir()
    audit = (tmp_path / "data" / "audit.jsonl").read_text()
    assert '"kind": "run_started"' in audit
    assert '"kind": "run_ended"' in audit


def test_check_mode_changes_nothing(env: dict[str, str], nginx_service: Any) -> None:
    old = nginx_service.pid()
    done = autosre(env, "playbook", "run", "restart_nginx", "--limit", "web1", "--check")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "in check mode" in done.stdout
    assert nginx_service.pid() == old


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["wipe_disk", "--limit", "web1"], "'wipe_disk' is not a whitelisted action"),
        (["restart_nginx", "--limit", "db9"], "not in the inventory"),
        (["restart_nginx", "--limit", "web1,'all'"], "not in the inventory"),
        (["restart_nginx", "--limit", "web1", "-e", "ansible_host=evil"], "is not allowed"),
        (
            ["restart_nginx", "--limit", "web1", "-e", "nginx_health_url=http://x/;rm -rf /"],
            "does not match",
        ),
        (["restart_nginx", "--limit", "web1", "-e", "novalue"], "is not key=value"),
        (["restart_nginx"], "--limit"),
    ],
)
def test_refusals_exit_2_and_run_nothing(
    env: dict[str, str], tmp_path: Path, nginx_service: Any, args: list[str], message: str
) -> None:
    old = nginx_service.pid()
    done = autosre(env, "playbook", "run", *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert nginx_service.pid() == old
    assert not (tmp_path / "data" / "runs").exists() or not any(
        (tmp_path / "data" / "runs").iterdir()
    )


def test_busy_host_is_refused(env: dict[str, str], tmp_path: Path, nginx_service: Any) -> None:
    old = nginx_service.pid()
    held = HostLocks(tmp_path / "data" / "locks").acquire(["web1"], "engine run 42")
    try:
        done = autosre(env, "playbook", "run", "restart_nginx", "--limit", "web1")
    finally:
        held.release()
    assert done.returncode == 2
    assert "web1 is busy: engine run 42" in done.stderr
    assert nginx_service.pid() == old
