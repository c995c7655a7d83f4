"""The memory, disk and service-down kinds: registry entries, evaluation of odd series,
policy sections, local readers, and the chaos commands' refusals and clean-up."""

from __future__ import annotations

import math
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import psutil
import pytest

from autosre import chaos_fill
from autosre.chaos_fill import fill_disk, fill_target, hog_memory, memory_to_hold
from autosre.chaos_nginx import BROKEN_NAME, stop_nginx
from autosre.cli import main
from engine.errors import ChaosError, RefusedError
from engine.evaluate import Thresholds, evaluate_host
from engine.metrics.local import (
    disk_used_percent,
    local_reader,
    memory_used_percent,
    service_down_percent,
)
from engine.policy.load import load_policy
from engine.policy.schema import SignalRule
from engine.policy.whitelist import build_request
from engine.signals import ANOMALIES, SIGNALS, signal_kind
from engine.types import HostStatus, Sample

ROOT = Path(__file__).resolve().parents[2]
NEW = ("memory_pressure", "disk_full", "service_down")


def rule(kind: str, **changes: object) -> SignalRule:
    return SignalRule(**{**signal_kind(kind).defaults, "ladder": ["x"], **changes})


def test_every_kind_is_a_gauge_with_its_own_status() -> None:
    statuses = {SIGNALS[name].status for name in NEW}
    assert statuses == {HostStatus.MEMORY_PRESSURE, HostStatus.DISK_FULL, HostStatus.SERVICE_DOWN}
    assert statuses <= ANOMALIES
    for name in NEW:
        assert not SIGNALS[name].rate
        assert rule(name).clear < rule(name).trigger


@pytest.mark.parametrize("kind", NEW)
def test_odd_series_never_read_as_normal_or_high_by_mistake(kind: str) -> None:
    limits = Thresholds.of(signal_kind(kind), rule(kind, sustain=2.0, step=1.0))
    now = 100.0

    def judge(*values: float) -> HostStatus:
        window = [Sample("h", now - len(values) + 1 + i, v) for i, v in enumerate(values)]
        return evaluate_host("h", window, None, limits, now).status

    assert judge(math.nan, math.nan) is HostStatus.UNKNOWN  # NaN is no data, not high
    assert judge(150.0, math.nan, 150.0, 150.0) is signal_kind(kind).status
    assert judge(-5.0, -1.0, -1e9) is HostStatus.NORMAL
    assert judge(1e9, 101.0, 100.0) is signal_kind(kind).status  # over 100 is still high
    assert judge(math.inf, math.inf) is HostStatus.UNKNOWN
    # A held anomaly clears only below clear, not on a NaN.
    held = evaluate_host(
        "h",
        [Sample("h", now - 3, 100.0), Sample("h", now - 2, 100.0), Sample("h", now - 1, 100.0)],
        None,
        limits,
        now - 1,
    )
    still = evaluate_host("h", [Sample("h", now, math.nan)], held, limits, now)
    assert still.status is HostStatus.UNKNOWN


@pytest.mark.parametrize("name", ["default.yaml", "lab.yaml"])
def test_shipped_policies_watch_every_kind(name: str) -> None:
    policy = load_policy(ROOT / "policies" / name, playbook_dir=ROOT / "playbooks")
    assert set(policy.signals) == set(SIGNALS)
    assert policy.signal("service_down").ladder == ["start_nginx", "rollback_nginx"]
    assert policy.signal("memory_pressure").ladder == ["restart_memory_hog"]
    assert policy.signal("disk_full").ladder == ["clean_disk"]
    for kind in NEW:  # verification settles seconds, not the prediction's hour
        assert policy.settle(kind) <= 30
    if name == "lab.yaml":
        disk = policy.signal("disk_full")
        assert 'mountpoint="/srv/lab-data"' in disk.promql and 'fstype="tmpfs"' in disk.promql
        assert disk.path == "/srv/lab-data"
    else:
        assert "predict_linear" in policy.signal("disk_full").promql


@pytest.mark.parametrize("path", ["relative", "/srv/../etc", "", "/a\x00b"])
def test_a_local_path_must_be_plain_and_absolute(path: str) -> None:
    with pytest.raises(ValueError, match="path"):
        rule("disk_full", path=path)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("disk_cache_dir", "/"),
        ("disk_cache_dir", "/var/cache"),
        ("disk_cache_dir", "/var/cache/../../etc"),
        ("disk_cache_dir", "/var/cache/.."),
        ("disk_cache_dir", "/etc/nginx"),
        ("disk_cache_dir", "/var/cache/x y"),
        ("disk_log_dir", "/etc"),
        ("disk_cache_age_minutes", "-1"),
        ("memory_hog_service", "nginx; reboot"),
        ("memory_hog_service", "../nginx"),
    ],
)
def test_hostile_playbook_vars_are_refused_by_the_policy(name: str, value: str) -> None:
    policy = load_policy(ROOT / "policies" / "lab.yaml", playbook_dir=ROOT / "playbooks")
    action = {"disk": "clean_disk", "memory": "restart_memory_hog"}[name.split("_", maxsplit=1)[0]]
    inventory = SimpleNamespace(unknown=lambda hosts: [])
    with pytest.raises(RefusedError, match=name):
        build_request(
            policy,
            inventory,  # type: ignore[arg-type]
            ROOT / "playbooks",
            action=action,
            hosts=["web1"],
            extra_vars={name: value},
        )


def test_local_readers(tmp_path: Path) -> None:
    assert 0 <= memory_used_percent() <= 100
    assert 0 <= disk_used_percent(str(tmp_path)) <= 100
    assert math.isnan(disk_used_percent(str(tmp_path / "missing")))
    reader = local_reader("disk_full", rule("disk_full", path=str(tmp_path)))
    assert reader is not None and reader() == pytest.approx(disk_used_percent(str(tmp_path)), abs=1)
    assert local_reader("memory_pressure", rule("memory_pressure")) is memory_used_percent


class _Ok(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(404 if self.path == "/missing" else 503 if self.path == "/bad" else 200)
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


def test_service_down_reads_the_pid_and_the_probe(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Ok)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    pidfile = tmp_path / "nginx.pid"
    try:
        pidfile.write_text(f"{os.getpid()}\n")
        assert service_down_percent(f"{url}/", pidfile) == 0.0
        assert service_down_percent(f"{url}/missing", pidfile) == 0.0  # it answers: it runs
        assert service_down_percent(f"{url}/bad", pidfile) == 100.0
        pidfile.write_text("not a pid")
        assert service_down_percent(f"{url}/", pidfile) == 100.0
        pidfile.unlink()
        assert service_down_percent(f"{url}/", pidfile) == 100.0
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
    pidfile.write_text(f"{os.getpid()}\n")
    assert service_down_percent(url, pidfile) == 100.0  # nobody listens any more


# -- chaos ------------------------------------------------------------------------------


def test_memory_to_hold_refuses_what_it_should() -> None:
    gib = 1024**3
    memory = lambda: SimpleNamespace(total=10 * gib, available=8 * gib)  # noqa: E731
    assert memory_to_hold(30, max_mb=4096, memory=memory) == gib
    with pytest.raises(ChaosError, match="already"):
        memory_to_hold(10, max_mb=4096, memory=memory)
    with pytest.raises(ChaosError, match="max-mb"):
        memory_to_hold(60, max_mb=1024, memory=memory)
    with pytest.raises(ChaosError, match="5%"):
        memory_to_hold(99, max_mb=100_000, memory=memory)


def _sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])


def test_memory_hog_lets_go_when_the_service_restarts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chaos_fill, "memory_to_hold", lambda *_a, **_k: 16 * 1024 * 1024)
    master = _sleeper()
    pidfile = tmp_path / "svc.pid"
    pidfile.write_text(str(master.pid))
    before = {p.pid for p in psutil.Process().children(recursive=True)}
    threading.Timer(1.0, master.kill).start()
    try:
        outcome = hog_memory(percent=50, seconds=20, pidfile=pidfile, poll=0.05)
    finally:
        master.kill()
        master.wait(timeout=5)
    assert outcome.reason == "service_restarted"
    assert outcome.duration < 10
    left = {p.pid for p in psutil.Process().children(recursive=True)} - before
    assert left == set(), "the holder outlived the hog"
    with pytest.raises(ChaosError, match="service name"):
        hog_memory(percent=50, seconds=1, service="nginx; reboot")


@pytest.mark.parametrize("path", ["/", "/etc", "{tmp}/../../etc", "{tmp}/link", "{tmp}/file"])
def test_fill_target_refuses_paths_outside_its_areas(tmp_path: Path, path: str) -> None:
    (tmp_path / "link").symlink_to("/etc")
    (tmp_path / "file").write_text("x")
    with pytest.raises(ChaosError):
        fill_target(path.format(tmp=tmp_path), areas=(tmp_path,))


def test_fill_disk_ends_when_cleaned_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chaos_fill, "bytes_to_fill", lambda *_a, **_k: 2 * 1024 * 1024)

    def clean() -> None:
        for path in tmp_path.glob("autosre-chaos-fill-*"):
            path.unlink()

    threading.Timer(0.5, clean).start()
    outcome = fill_disk(path=tmp_path, percent=95, seconds=10, areas=(tmp_path,), poll=0.05)
    assert outcome.reason == "cleaned"
    # Stubborn: written again when cleaned; removed at the end of its time.
    threading.Timer(0.3, clean).start()
    lines: list[str] = []
    stubborn = fill_disk(
        path=tmp_path,
        percent=95,
        seconds=1.0,
        stubborn=True,
        areas=(tmp_path,),
        on_progress=lines.append,
        poll=0.05,
    )
    assert stubborn.reason == "timeout"
    assert any("writes it again" in line for line in lines)
    assert list(tmp_path.iterdir()) == []


def test_nginx_down_stubborn_breaks_and_restores_the_config(tmp_path: Path) -> None:
    (tmp_path / "conf" / "conf.d").mkdir(parents=True)
    pidfile = tmp_path / "nginx.pid"
    master = _sleeper()
    pidfile.write_text(str(master.pid))
    calls: list[str] = []
    broken = tmp_path / "conf" / "conf.d" / BROKEN_NAME

    def service(action: str) -> subprocess.CompletedProcess[str]:
        calls.append(action)
        if action == "stop":
            assert broken.exists(), "the config must be broken before the stop"
            pidfile.unlink()
        else:
            pidfile.write_text(str(os.getpid()))
        return subprocess.CompletedProcess([action], 0, "", "")

    try:
        outcome = stop_nginx(
            seconds=0.5,
            stubborn=True,
            pidfile=pidfile,
            conf_dir=tmp_path / "conf",
            service=service,
            poll=0.05,
        )
    finally:
        master.kill()
        master.wait(timeout=5)
    assert outcome.reason == "timeout"
    assert calls == ["stop", "start"]
    assert not broken.exists()
    assert outcome.restored == ("config", "started")


@pytest.mark.parametrize(
    "argv",
    [
        ["chaos", "disk", "--path", "/"],
        ["chaos", "disk", "--path", "/etc/nginx"],
        ["chaos", "memory", "--service", "x;reboot", "--seconds", "1"],
    ],
)
def test_chaos_cli_refuses_with_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and err.strip()


@pytest.mark.parametrize("percent", ["0", "100", "nan", "-3", "x"])
def test_chaos_cli_percent_is_checked(percent: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["chaos", "memory", "--percent", percent])
    assert exit_info.value.code == 2


def test_time_bound_is_respected(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chaos_fill, "bytes_to_fill", lambda *_a, **_k: 1024)
    started = time.monotonic()
    outcome = fill_disk(path=tmp_path, percent=95, seconds=0.5, areas=(tmp_path,), poll=0.05)
    assert outcome.reason == "timeout" and time.monotonic() - started < 3
