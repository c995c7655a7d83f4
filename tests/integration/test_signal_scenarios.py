"""The memory, disk and service-down signal kinds end to end: their playbooks against this
machine's nginx and files (check mode, idempotence, hostile vars), and their chaos scenarios
through a real engine (`autosre run`), each ending resolved, and escalated when stubborn.

Memory reads Prometheus + node_exporter (meminfo); disk reads Prometheus + a node_exporter
with the filesystem collector, on a small tmpfs of the test's own; service down reads this
machine (the local source probes nginx). Each scenario's policy is the lab policy watching
only its kind, so the CPU of other tests on the machine cannot interfere."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml

from engine.execute.results import read_events
from engine.execute.runner import AnsibleRunnerExecutor
from engine.types import RunRequest, RunResult
from tests.fixtures.ansible import local_executor
from tests.fixtures.nginx import NginxService
from tests.fixtures.prometheus import (
    NODE_EXPORTER,
    NodeExporter,
    _stop,
    _wait_until_answers,
    free_port,
)
from tests.fixtures.receivers import Receiver
from tests.fixtures.tmpfs import tmpfs
from tests.integration.harness import (
    ROOT,
    Store,
    assert_escalated,
    assert_quiet,
    chaos,
    engine_process,
    lab_env,
    paging,
    wait_for,
)

pytestmark = [pytest.mark.integration, pytest.mark.serial]

PLAYBOOKS = ROOT / "playbooks"
SHAPE = {False: "cured", True: "stubborn"}
HOST = "localhost"


# -- playbooks ----------------------------------------------------------------------


@pytest.fixture
def executor(tmp_path: Path) -> AnsibleRunnerExecutor:
    return local_executor(tmp_path, HOST)


def run(
    executor: AnsibleRunnerExecutor, name: str, ident: str, *, check: bool = False, **var: str
) -> RunResult:
    request = RunRequest(
        action=name,
        playbook=str(PLAYBOOKS / f"{name}.yml"),
        hosts=(HOST,),
        extra_vars=var,
        check=check,
        timeout=120,
    )
    return executor.run(request, ident=ident)


def messages(result: RunResult, event: str) -> str:
    found = [
        str(e["event_data"]["res"].get("msg", ""))
        for e in read_events(Path(result.artifact_dir))
        if e.get("event") == event
    ]
    return " | ".join(found)


def _cache_tree(root: Path) -> dict[str, Path]:
    logs, cache, outside = root / "logs", root / "cache", root / "outside"
    for folder in (logs, cache / "sub", outside):
        folder.mkdir(parents=True)
    files = {
        "live": logs / "app.log",
        "rotated": logs / "app.log.1",
        "compressed": logs / "app.log.2.gz",
        "old": cache / "old.bin",
        "old_sub": cache / "sub" / ".old-hidden",
        "new": cache / "new.bin",
        "target": outside / "keep.txt",
    }
    for path in files.values():
        path.write_text(f"{path.name}\n" * 100)
    files["link"] = cache / "link-out"
    files["link"].symlink_to(files["target"])
    old = time.time() - 7200
    for key in ("old", "old_sub", "target"):
        os.utime(files[key], (old, old))
    os.utime(files["link"], (old, old), follow_symlinks=False)
    return files


def test_clean_disk_compresses_rotated_logs_and_only_old_cache_files(
    executor: AnsibleRunnerExecutor, tmp_path: Path
) -> None:
    files = _cache_tree(tmp_path / "t")
    paths = {
        "disk_log_dir": str(tmp_path / "t" / "logs"),
        "disk_cache_dir": str(tmp_path / "t" / "cache"),
        "disk_cache_root": str(tmp_path / "t"),
        "disk_cache_age_minutes": "60",
    }
    checked = run(executor, "clean_disk", "clean-check", check=True, **paths)
    assert checked.host_succeeded(HOST), checked
    assert files["old"].exists() and files["rotated"].exists(), "check mode changed the disk"

    result = run(executor, "clean_disk", "clean-1", **paths)
    assert result.host_succeeded(HOST), result
    assert files["live"].exists(), "a live log was touched"
    assert not files["rotated"].exists() and Path(f"{files['rotated']}.gz").exists()
    assert files["compressed"].exists()
    assert not files["old"].exists() and not files["old_sub"].exists()
    assert files["new"].exists()
    assert files["link"].is_symlink() and files["target"].exists(), "followed a symlink out"

    again = run(executor, "clean_disk", "clean-2", **paths)
    assert again.host_succeeded(HOST), again
    assert again.stats[HOST].changed == 0


@pytest.mark.parametrize(
    "cache_dir",
    ["{root}", "/", "{root}/cache/../outside", "{root}/linked", "/etc", "{root}/cache/"],
)
def test_clean_disk_refuses_paths_outside_its_root(
    executor: AnsibleRunnerExecutor, tmp_path: Path, cache_dir: str
) -> None:
    root = tmp_path / "t"
    files = _cache_tree(root)
    (root / "linked").symlink_to(root / "outside")
    result = run(
        executor,
        "clean_disk",
        "clean-hostile",
        disk_log_dir=str(root / "logs"),
        disk_cache_dir=cache_dir.format(root=root),
        disk_cache_root=str(root),
        disk_cache_age_minutes="0",
    )
    assert not result.host_succeeded(HOST)
    assert "refused" in messages(result, "runner_on_failed")
    assert all(path.exists() for path in files.values()), "deleted something it refused"


def test_start_nginx_starts_it_once_and_fails_clearly_on_a_broken_config(
    nginx_service: NginxService, executor: AnsibleRunnerExecutor
) -> None:
    subprocess.run(["service", "nginx", "stop"], check=True, capture_output=True, timeout=30)
    checked = run(executor, "start_nginx", "start-check", check=True)
    assert checked.host_succeeded(HOST), checked
    assert not nginx_service.running(), "check mode started nginx"

    started = run(executor, "start_nginx", "start-1")
    assert started.host_succeeded(HOST), started
    assert nginx_service.running() and nginx_service.answers()
    pid = nginx_service.pid()
    again = run(executor, "start_nginx", "start-2")
    assert again.host_succeeded(HOST) and again.stats[HOST].changed == 0, again
    assert nginx_service.pid() == pid

    broken = nginx_service.conf_dir / "conf.d" / "autosre-test-broken.conf"
    broken.write_text("not_a_directive on;\n")
    subprocess.run(["service", "nginx", "stop"], check=True, capture_output=True, timeout=30)
    failed = run(executor, "start_nginx", "start-broken")
    assert not failed.host_succeeded(HOST)
    assert "configuration is broken" in messages(failed, "runner_on_failed")
    assert not nginx_service.running()
    broken.unlink()  # the fixture starts nginx again on the restored config


def test_restart_memory_hog_restarts_the_declared_service_and_reports_rss(
    nginx_service: NginxService, executor: AnsibleRunnerExecutor
) -> None:
    old = nginx_service.pid()
    checked = run(executor, "restart_memory_hog", "hog-check", check=True)
    assert checked.host_succeeded(HOST), checked
    assert nginx_service.pid() == old, "check mode restarted nginx"

    result = run(executor, "restart_memory_hog", "hog-1", memory_hog_service="nginx")
    assert result.host_succeeded(HOST), result
    assert nginx_service.wait_for_new_pid(old) != old
    assert result.stats[HOST].changed == 1
    assert "nginx RSS before" in messages(result, "runner_on_ok")

    pid = nginx_service.pid()
    hostile = run(executor, "restart_memory_hog", "hog-2", memory_hog_service="nginx; reboot")
    assert not hostile.host_succeeded(HOST)
    assert "refused" in messages(hostile, "runner_on_failed")
    assert nginx_service.pid() == pid


# -- scenarios ----------------------------------------------------------------------

INVENTORY = """\
all:
  hosts:
    web1:
      ansible_host: 127.0.0.1
      ansible_connection: local
      ansible_python_interpreter: "{{{{ ansible_playbook_python }}}}"
      nginx_service_manager: service
{extra}"""


def scenario_env(
    tmp_path: Path,
    prometheus_url: str,
    kind: str,
    host_vars: dict[str, str],
    pager: Receiver,
    **section: Any,
) -> dict[str, str]:
    """The lab's environment with a policy that watches ``kind`` only (its lab section with
    ``section``'s changes), pages ``pager`` (a JSON webhook), and a one-host inventory with
    ``host_vars``."""
    env = lab_env(tmp_path, prometheus_url)
    data = yaml.safe_load((ROOT / "policies" / "lab.yaml").read_text(encoding="utf-8"))
    data["signals"] = {kind: {**data["signals"][kind], **section}}
    data["notifications"] = paging(pager, env)
    policy = tmp_path / "policy.yaml"
    policy.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    extra = "".join(f"      {name}: {value!r}\n" for name, value in host_vars.items())
    inventory = tmp_path / "inventory-kind.yml"
    inventory.write_text(INVENTORY.format(extra=extra), encoding="utf-8")
    env.update(AUTOSRE_POLICY=str(policy), AUTOSRE_INVENTORY=str(inventory))
    env.update(AUTOSRE_LOCAL_HOST="web1")
    return env


def closed(store: Store) -> dict[str, Any]:
    return wait_for(
        "the incident to close",
        lambda: next(
            (
                i
                for i in store.incidents("web1")
                if i["status"] in {"resolved", "escalated", "failed"}
            ),
            None,
        ),
        timeout=120,
    )


def memory_used() -> float:
    memory = psutil.virtual_memory()
    return 100.0 * (1 - memory.available / memory.total)


@pytest.fixture
def memory_lab(node_exporter: NodeExporter, prometheus_factory: Any) -> Any:
    server = prometheus_factory([node_exporter.address], scrape_interval="1s")
    server.wait_for_series("node_memory_MemAvailable_bytes", timeout=30)
    return server


@pytest.mark.parametrize("stubborn", [False, True], ids=["cured", "stubborn"])
def test_memory_pressure_scenario(
    tmp_path: Path,
    memory_lab: Any,
    nginx_service: NginxService,
    receivers: dict[str, Receiver],
    stubborn: bool,
) -> None:
    # The machine is shared: thresholds sit just above today's use, the hog 10 points up.
    base = memory_used()
    pager = receivers["webhook"]
    env = scenario_env(
        tmp_path, memory_lab.url, "memory_pressure", {}, pager, trigger=base + 6, clear=base + 3
    )
    store = Store(tmp_path / "data")
    old = nginx_service.pid()
    flags = ["--stubborn"] if stubborn else []
    started = time.monotonic()
    with (
        engine_process(env, tmp_path / "engine.log"),
        chaos(
            env,
            "memory",
            "--percent",
            f"{base + 10:.1f}",
            "--seconds",
            "90",
            *flags,
            log=tmp_path / "chaos.log",
        ),
    ):
        incident = closed(store)
    print(f"memory scenario ({SHAPE[stubborn]}): {time.monotonic() - started:.1f}s")
    assert incident["kind"] == "memory_pressure"
    assert nginx_service.pid() != old, "nginx was not restarted"
    if stubborn:
        assert_escalated(store, incident, ["restart_memory_hog"], pager)
    else:
        assert incident["status"] == "resolved", store.detail(incident["id"])
        assert incident["action"] == "restart_memory_hog"
        assert_quiet(pager)
        assert "service_restarted" in (tmp_path / "chaos.log").read_text()
    store.close()


@pytest.fixture
def disk_lab(tmp_path: Path, prometheus_factory: Any) -> Iterator[tuple[Any, Path]]:
    """A 16 MiB tmpfs of the test's own, a node_exporter reading filesystems, a Prometheus."""
    if not NODE_EXPORTER.exists():
        pytest.skip("prometheus-node-exporter is not installed")
    with tmpfs(tmp_path / "mnt") as mount:
        address = f"127.0.0.1:{free_port()}"
        log = tmp_path / "node_exporter_fs.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(
                [
                    str(NODE_EXPORTER),
                    f"--web.listen-address={address}",
                    "--web.disable-exporter-metrics",
                    "--collector.disable-defaults",
                    "--collector.filesystem",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        try:
            _wait_until_answers(proc, f"http://{address}/metrics", log)
            server = prometheus_factory([address], scrape_interval="1s")
            server.wait_for_series(f'node_filesystem_avail_bytes{{mountpoint="{mount}"}}', 30)
            yield server, mount
        finally:
            _stop(proc)


@pytest.mark.parametrize("stubborn", [False, True], ids=["cured", "stubborn"])
def test_disk_full_scenario(
    tmp_path: Path, disk_lab: tuple[Any, Path], receivers: dict[str, Receiver], stubborn: bool
) -> None:
    server, mount = disk_lab
    pager = receivers["webhook"]
    cache = mount / "cache"
    cache.mkdir()
    lab = yaml.safe_load((ROOT / "policies" / "lab.yaml").read_text(encoding="utf-8"))
    query = lab["signals"]["disk_full"]["query"].replace("/srv/lab-data", str(mount))
    assert str(mount) in query, "the lab's disk query no longer names its mount"
    host_vars = {
        "disk_cache_dir": str(cache),
        "disk_cache_root": str(mount),
        "disk_cache_age_minutes": "0",
        "disk_log_dir": str(tmp_path / "logs"),
    }
    env = scenario_env(
        tmp_path, server.url, "disk_full", host_vars, pager, query=query, path=str(mount)
    )
    store = Store(tmp_path / "data")
    # Stubborn: the fill lies outside the cache directory, where cleaning may not go.
    target = mount if stubborn else cache
    flags = ["--stubborn"] if stubborn else []
    started = time.monotonic()
    with (
        engine_process(env, tmp_path / "engine.log"),
        chaos(
            env,
            "disk",
            "--path",
            str(target),
            "--percent",
            "95",
            "--seconds",
            "90",
            *flags,
            log=tmp_path / "chaos.log",
        ),
    ):
        incident = closed(store)
    print(f"disk scenario ({SHAPE[stubborn]}): {time.monotonic() - started:.1f}s")
    assert incident["kind"] == "disk_full"
    if stubborn:
        assert_escalated(store, incident, ["clean_disk"], pager)
    else:
        assert incident["status"] == "resolved", store.detail(incident["id"])
        assert incident["action"] == "clean_disk"
        assert_quiet(pager)
        assert "cleaned" in (tmp_path / "chaos.log").read_text()
    assert list(mount.rglob("autosre-chaos-fill-*")) == [], "the chaos left its file"
    store.close()


@pytest.mark.parametrize("stubborn", [False, True], ids=["cured", "stubborn"])
def test_service_down_scenario(
    tmp_path: Path, nginx_service: NginxService, receivers: dict[str, Receiver], stubborn: bool
) -> None:
    pager = receivers["webhook"]
    conf_before = sorted(p.name for p in (nginx_service.conf_dir / "conf.d").iterdir())
    # Stubborn: no known-good snapshot, so the rollback cannot cure the broken config.
    host_vars = {"nginx_known_good_dir": str(tmp_path / "no-snapshot")}
    env = scenario_env(tmp_path, "", "service_down", host_vars, pager)
    store = Store(tmp_path / "data")
    flags = ["--stubborn"] if stubborn else []
    started = time.monotonic()
    with engine_process(env, tmp_path / "engine.log"):
        with chaos(
            env, "nginx-down", "--seconds", "90", *flags, log=tmp_path / "chaos.log"
        ) as proc:
            incident = closed(store)
        proc.wait(timeout=30)
    print(f"nginx-down scenario ({SHAPE[stubborn]}): {time.monotonic() - started:.1f}s")
    assert incident["kind"] == "service_down"
    if stubborn:
        assert_escalated(store, incident, ["start_nginx", "rollback_nginx"], pager)
    else:
        assert incident["status"] == "resolved", store.detail(incident["id"])
        assert incident["action"] == "start_nginx"
        assert_quiet(pager)
        assert "nginx_started" in (tmp_path / "chaos.log").read_text()
    # The chaos command put the machine back: config as it was, nginx running.
    assert sorted(p.name for p in (nginx_service.conf_dir / "conf.d").iterdir()) == conf_before
    wait_for("nginx to run again", lambda: nginx_service.running() or None, 20)
    store.close()
