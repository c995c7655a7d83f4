"""The nginx playbooks against this machine's real nginx, run through the real executor."""

from __future__ import annotations

import json
import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from engine.execute.results import read_events
from engine.execute.runner import AnsibleRunnerExecutor
from engine.types import RunRequest, RunResult
from tests.fixtures.ansible import local_executor, task_outcomes
from tests.fixtures.nginx import NginxService

pytestmark = pytest.mark.integration

PLAYBOOKS = Path(__file__).resolve().parents[2] / "playbooks"
HOST = "localhost"


@pytest.fixture
def executor(tmp_path: Path) -> AnsibleRunnerExecutor:
    return local_executor(tmp_path, HOST)


def run_playbook(
    executor: AnsibleRunnerExecutor, name: str, ident: str, **extra_vars: str
) -> RunResult:
    request = RunRequest(
        action=name,
        playbook=str(PLAYBOOKS / f"{name}.yml"),
        hosts=(HOST,),
        extra_vars=extra_vars,
        timeout=120,
    )
    return executor.run(request, ident=ident)


def failed_messages(result: RunResult) -> list[str]:
    return [
        str(event["event_data"]["res"].get("msg", ""))
        for event in read_events(Path(result.artifact_dir))
        if event.get("event") == "runner_on_failed"
    ]


LEARN = "Learn the service manager once"


def test_restart_replaces_the_master_and_snapshots_the_config(
    nginx_service: NginxService, executor: AnsibleRunnerExecutor, tmp_path: Path
) -> None:
    snapshot = tmp_path / "known-good"
    old = nginx_service.pid()

    result = run_playbook(
        executor, "restart_nginx", "restart-1", nginx_known_good_dir=str(snapshot)
    )

    assert result.host_succeeded(HOST), result
    assert nginx_service.wait_for_new_pid(old, timeout=10) != old
    assert nginx_service.answers()
    conf = nginx_service.conf_dir
    assert (snapshot / "nginx.conf").read_bytes() == (conf / "nginx.conf").read_bytes()
    enabled = snapshot / "sites-enabled" / "default"
    if (conf / "sites-enabled" / "default").is_symlink():
        assert enabled.is_symlink()

    # The service manager was detected once and kept in the shared fact cache.
    assert task_outcomes(Path(result.artifact_dir), LEARN) == ["runner_on_ok"]
    (cached,) = (tmp_path / "facts").iterdir()
    facts = json.loads(cached.read_text())
    if "__payload__" in facts:  # ansible-core 2.19 wraps the facts in a JSON string
        facts = json.loads(facts["__payload__"])
    assert facts["ansible_service_mgr"]

    # The snapshot is already current: only the restart itself changes anything, and the
    # service manager comes from the cache.
    again = run_playbook(executor, "restart_nginx", "restart-2", nginx_known_good_dir=str(snapshot))
    assert again.host_succeeded(HOST), again
    assert again.stats[HOST].changed == 1
    assert task_outcomes(Path(again.artifact_dir), LEARN) == ["runner_on_skipped"]
    assert nginx_service.running()


def test_rollback_restores_the_snapshot(
    nginx_service: NginxService, executor: AnsibleRunnerExecutor, tmp_path: Path
) -> None:
    conf = nginx_service.conf_dir
    snapshot = tmp_path / "known-good"
    backups = tmp_path / "backups"
    shutil.copytree(conf, snapshot, symlinks=True)
    good = (conf / "nginx.conf").read_bytes()
    (conf / "nginx.conf").write_bytes(good + b"\n# changed by test_rollback\n")
    (conf / "conf.d" / "autosre-test-extra.conf").write_text("# added after the snapshot\n")
    paths = {"nginx_known_good_dir": str(snapshot), "nginx_backup_root": str(backups)}

    result = run_playbook(executor, "rollback_nginx", "rollback-1", **paths)

    assert result.host_succeeded(HOST), result
    assert (conf / "nginx.conf").read_bytes() == good
    assert not (conf / "conf.d" / "autosre-test-extra.conf").exists()
    (backup,) = backups.iterdir()
    assert (backup / "nginx.conf").read_bytes().endswith(b"# changed by test_rollback\n")
    nginx_service.wait_until_answering(timeout=10)

    again = run_playbook(executor, "rollback_nginx", "rollback-2", **paths)
    assert again.host_succeeded(HOST), again
    assert again.stats[HOST].changed == 0
    assert len(list(backups.iterdir())) == 1


def test_rollback_without_snapshot_fails_clearly(
    nginx_service: NginxService, executor: AnsibleRunnerExecutor, tmp_path: Path
) -> None:
    missing = tmp_path / "no-snapshot-here"

    result = run_playbook(
        executor, "rollback_nginx", "rollback-none", nginx_known_good_dir=str(missing)
    )

    assert result.status == "failed"
    assert result.stats[HOST].failures == 1
    assert any("No known-good nginx config" in msg for msg in failed_messages(result))
    assert nginx_service.answers()


def test_broken_config_is_never_restarted(
    nginx_service: NginxService, executor: AnsibleRunnerExecutor, tmp_path: Path
) -> None:
    old = nginx_service.pid()
    conf = nginx_service.conf_dir / "nginx.conf"
    conf.write_bytes(conf.read_bytes() + b"\nthis_is_not_a_directive on;\n")

    result = run_playbook(
        executor, "restart_nginx", "restart-broken", nginx_known_good_dir=str(tmp_path / "kg")
    )

    assert result.status == "failed"
    assert result.stats[HOST].failures == 1
    assert result.stats[HOST].changed == 0
    assert nginx_service.pid() == old
    assert nginx_service.running()
    assert nginx_service.answers()
    assert not (tmp_path / "kg").exists()


FAKE_TOOL = """#!/bin/sh
printf '%s\\n' "$(basename "$0") $*" >> "{calls}"
"""


@pytest.mark.parametrize(
    ("manager", "expected"),
    [
        ("systemd", "systemctl restart nginx"),
        ("systemd; touch {marker} $(touch {marker}) `touch {marker}`", "service nginx restart"),
    ],
)
def test_the_restart_command_is_a_constant_whatever_the_service_manager_says(
    executor: AnsibleRunnerExecutor,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    manager: str,
    expected: str,
) -> None:
    # The restart is a raw shell command: a service manager named in an inventory (or a
    # hostile one) only chooses between two constants and never reaches the shell. Stand-ins
    # for the tools, the config and the health check keep this machine's nginx out of it.
    calls, marker, tools, conf = (tmp_path / n for n in ("calls", "pwned", "bin", "conf"))
    tools.mkdir()
    conf.mkdir()
    (conf / "nginx.conf").write_text("events {}\n")
    for name in ("service", "systemctl"):
        (tools / name).write_text(FAKE_TOOL.format(calls=calls))
        (tools / name).chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    with http_server() as url:
        result = run_playbook(
            executor,
            "restart_nginx",
            "restart-const",
            nginx_binary="/bin/true",
            nginx_conf_dir=str(conf),
            nginx_known_good_dir=str(tmp_path / "known-good"),
            nginx_health_url=url,
            nginx_service_manager=manager.format(marker=marker),
        )

    assert result.host_succeeded(HOST), failed_messages(result)
    assert calls.read_text().splitlines() == [expected]
    assert not marker.exists()


@contextmanager
def http_server() -> Iterator[str]:
    """A local HTTP server that answers 200 to everything, as the health check's target."""

    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
