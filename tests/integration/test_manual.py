"""Playbooks by hand: the same whitelist, inventory check, lock and record as the engine."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from autosre.cli import main
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


REFUSALS = [
    (["wipe_disk", "--limit", "web1"], "'wipe_disk' is not a whitelisted action"),
    (["restart_nginx", "--limit", "db9"], "not in the inventory"),
    (["restart_nginx", "--limit", "web1,'all'"], "only host names, group names and ranges"),
    (["restart_nginx", "--limit", "all"], "not in the inventory"),
    (["restart_nginx", "--limit", "web*"], "only host names, group names and ranges"),
    (["restart_nginx", "--limit", "web1:&web2"], "only host names, group names and ranges"),
    (["restart_nginx", "--limit", "web[3:9]"], "the range names no inventory host"),
    # A range resolves to hosts that a person must see and confirm (no terminal here).
    (["restart_nginx", "--limit", "web[1:2]"], "confirm its hosts with --yes"),
    (["restart_nginx", "--limit", "web1", "-e", "ansible_host=evil"], "is not allowed"),
    (
        ["restart_nginx", "--limit", "web1", "-e", "nginx_health_url=http://x/;rm -rf /"],
        "does not match",
    ),
    (["restart_nginx", "--limit", "web1", "-e", "novalue"], "is not key=value"),
    (["restart_nginx"], "--limit"),
]


def in_process(
    env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    *args: str,
) -> tuple[int, str]:
    """``autosre *args`` in this process, in env's AUTOSRE_ settings: status and stderr."""
    for name, value in env.items():
        if name.startswith("AUTOSRE_"):
            monkeypatch.setenv(name, value)
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse exits on usage errors
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def assert_nothing_ran(tmp_path: Path, nginx_service: Any, old: int | None) -> None:
    assert nginx_service.pid() == old
    runs = tmp_path / "data" / "runs"
    assert not runs.exists() or not any(runs.iterdir())


@pytest.mark.parametrize(("args", "message"), REFUSALS)
def test_refusals_exit_2_and_run_nothing(
    env: dict[str, str],
    tmp_path: Path,
    nginx_service: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    args: list[str],
    message: str,
) -> None:
    old = nginx_service.pid()
    code, err = in_process(env, monkeypatch, capsys, "playbook", "run", *args)
    assert code == 2, err
    assert message in err
    assert "Traceback" not in err
    assert_nothing_ran(tmp_path, nginx_service, old)


# The real command for each way to exit 2 (a refused request, a bad command line); the
# other refusals above take the same paths in this process.
@pytest.mark.parametrize(("args", "message"), [REFUSALS[0], REFUSALS[-1]])
def test_the_real_cli_refuses_with_exit_2(
    env: dict[str, str], tmp_path: Path, nginx_service: Any, args: list[str], message: str
) -> None:
    old = nginx_service.pid()
    done = autosre(env, "playbook", "run", *args)
    assert done.returncode == 2, done.stdout + done.stderr
    assert message in done.stderr
    assert "Traceback" not in done.stderr
    assert_nothing_ran(tmp_path, nginx_service, old)


def test_busy_host_is_refused(
    env: dict[str, str],
    tmp_path: Path,
    nginx_service: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    old = nginx_service.pid()
    # flock: held on another open file, the lock refuses this process as it would another.
    held = HostLocks(tmp_path / "data" / "locks").acquire(["web1"], "engine run 42")
    try:
        code, err = in_process(
            env, monkeypatch, capsys, "playbook", "run", "restart_nginx", "--limit", "web1"
        )
    finally:
        held.release()
    assert code == 2
    assert "web1 is busy: engine run 42" in err
    assert nginx_service.pid() == old
