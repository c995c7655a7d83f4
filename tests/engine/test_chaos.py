"""The CPU burner: real burner processes, a real "master" process behind a tmp pidfile."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from autosre.chaos import BurnOutcome, burn_cpu
from engine.errors import ChaosError

ROOT = Path(__file__).resolve().parents[2]
SLEEP = shutil.which("sleep") or "/bin/sleep"  # resolved now: one test empties PATH


def alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def assert_all_gone(pids: set[int], wait: float = 3.0) -> None:
    deadline = time.monotonic() + wait
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in pids if alive(pid)], "a burner process outlived the burn"


class FakeMaster:
    """A sleeping process standing in for nginx's master, named in a tmp pidfile."""

    def __init__(self, pidfile: Path) -> None:
        self.pidfile = pidfile
        self.procs: list[subprocess.Popen[bytes]] = []
        self.start()

    def start(self) -> None:
        proc = subprocess.Popen([SLEEP, "60"])
        self.procs.append(proc)
        self.pidfile.write_text(f"{proc.pid}\n")

    def restart(self) -> None:
        """Kill the current master and put a new one in the pidfile, like a restart."""
        self.procs[-1].kill()
        self.procs[-1].wait(timeout=5)
        self.start()

    def stop(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait(timeout=5)


@pytest.fixture
def master(tmp_path: Path) -> Iterator[FakeMaster]:
    fake = FakeMaster(tmp_path / "nginx.pid")
    yield fake
    fake.stop()


def burner_pids(known: set[int]) -> set[int]:
    """Descendants of this process now, other than the ones we started ourselves."""
    return {p.pid for p in psutil.Process().children(recursive=True)} - known


def burn_with_restart(
    master: FakeMaster, after: float, **kwargs: object
) -> tuple[BurnOutcome, set[int]]:
    """Burn, restart the fake master after ``after`` seconds; return the outcome and burner pids."""
    seen: set[int] = set()
    before = burner_pids(set())  # other fixtures' services are not burners

    def restart() -> None:
        seen.update(burner_pids(before | {p.pid for p in master.procs}))
        master.restart()

    timer = threading.Timer(after, restart)
    timer.start()
    try:
        outcome = burn_cpu(pidfile=master.pidfile, poll=0.05, **kwargs)  # type: ignore[arg-type]
    finally:
        timer.cancel()
        timer.join(timeout=5)
    return outcome, seen


def test_burn_stops_when_the_master_is_replaced(master: FakeMaster) -> None:
    messages: list[str] = []

    outcome, seen = burn_with_restart(master, 1.0, seconds=5, on_progress=messages.append)

    # The restart, not the 5 s limit, ended it. No upper bound in seconds: the burn loads
    # both cores, so how soon after the restart it noticed is the machine's, not the code's.
    assert outcome.reason == "nginx_restarted"
    assert 0.9 <= outcome.duration < 5
    assert seen, "no burner process was running"
    assert_all_gone(seen)
    assert any("stress-ng" in m or "python" in m for m in messages)


def test_stubborn_burn_ignores_restarts(master: FakeMaster) -> None:
    messages: list[str] = []

    outcome, seen = burn_with_restart(
        master, 0.5, seconds=2, stubborn=True, on_progress=messages.append
    )

    assert outcome.reason == "timeout"
    assert any("stubborn burn goes on" in m for m in messages)
    assert outcome.duration >= 2.0  # its whole time, the restart at 0.5 s notwithstanding
    assert seen
    assert_all_gone(seen)


def test_burn_needs_a_running_nginx_unless_stubborn(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pid"
    before = burner_pids(set())
    with pytest.raises(ChaosError, match="not running"):
        burn_cpu(seconds=1, pidfile=missing)
    dead = subprocess.Popen([SLEEP, "0"])
    dead.wait(timeout=5)
    stale = tmp_path / "stale.pid"
    stale.write_text(str(dead.pid))
    with pytest.raises(ChaosError, match="not running"):
        burn_cpu(seconds=1, pidfile=stale)
    assert not burner_pids(before), "a burner started although the burn was refused"

    outcome = burn_cpu(seconds=0.5, stubborn=True, pidfile=missing, poll=0.05)
    assert outcome.reason == "timeout"


@pytest.mark.parametrize(("seconds", "workers"), [(0, None), (-1, None), (1, 0)])
def test_burn_rejects_nonsense_bounds(seconds: float, workers: int | None) -> None:
    with pytest.raises(ChaosError, match="need seconds > 0"):
        burn_cpu(seconds=seconds, workers=workers, stubborn=True)


def test_python_burners_without_stress_ng(
    master: FakeMaster, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing on PATH: no stress-ng
    messages: list[str] = []

    outcome, seen = burn_with_restart(
        master, 1.5, seconds=5, workers=2, on_progress=messages.append
    )

    assert outcome.reason == "nginx_restarted"
    assert "python" in messages[0]
    assert len(seen) >= 2
    assert_all_gone(seen)


def test_sigterm_interrupts_and_cleans_up(tmp_path: Path) -> None:
    script = (
        "from pathlib import Path\n"
        "from autosre.chaos import burn_cpu\n"
        "o = burn_cpu(seconds=20, stubborn=True, pidfile=Path('/nonexistent.pid'),\n"
        "             on_progress=lambda m: print(m, flush=True), poll=0.05)\n"
        "print('outcome', o.reason, flush=True)\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script], cwd=ROOT, stdout=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        assert "burning" in proc.stdout.readline()
        children = {p.pid for p in psutil.Process(proc.pid).children(recursive=True)}
        assert children
        proc.terminate()
        out, _ = proc.communicate(timeout=10)
    finally:
        proc.kill()
        proc.wait(timeout=5)
    assert "outcome interrupted" in out
    assert proc.returncode == 0
    assert_all_gone(children)
