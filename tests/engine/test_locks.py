"""Per-host flock locks: all or nothing, the holder is named, and they die with their process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import HostBusyError
from engine.execute.locks import HeldLocks, HostLocks

# A child that takes the locks, says so on stdout, then waits to be killed.
HOLDER = """
import sys, time
from pathlib import Path
from engine.execute.locks import HostLocks
held = HostLocks(Path(sys.argv[1])).acquire(sys.argv[3:], holder=sys.argv[2])
print("held", flush=True)
time.sleep(60)
"""


@pytest.fixture
def locks(tmp_path: Path) -> HostLocks:
    return HostLocks(tmp_path / "locks")


@pytest.fixture
def child_holding(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """A python -c process holding web1 and web2 as 'run child-7'; killed at teardown."""
    process = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(tmp_path / "locks"), "run child-7", "web1", "web2"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "held"
        yield process
    finally:
        process.kill()
        process.wait(timeout=10)
        if process.stdout is not None:
            process.stdout.close()


def test_creates_the_directory(tmp_path: Path) -> None:
    directory = tmp_path / "a" / "b"
    HostLocks(directory)
    assert directory.is_dir()


def test_acquire_and_release(locks: HostLocks) -> None:
    held = locks.acquire(["web2", "web1", "web2"], holder="run r1")
    assert isinstance(held, HeldLocks)
    assert held.hosts == ("web1", "web2")
    assert (locks.directory / "web1.lock").read_text() == "run r1"
    with pytest.raises(HostBusyError):
        locks.acquire(["web1"], holder="run r2")
    held.release()
    assert not held.hosts
    again = locks.acquire(["web1", "web2"], holder="run r2")
    assert (locks.directory / "web1.lock").read_text() == "run r2"
    again.release()


def test_release_is_idempotent(locks: HostLocks) -> None:
    held = locks.acquire(["web1"], holder="r")
    held.release()
    held.release()
    locks.acquire(["web1"], holder="r").release()


def test_acquire_nothing(locks: HostLocks) -> None:
    held = locks.acquire([], holder="r")
    assert held.hosts == ()
    held.release()


def test_busy_error_names_host_and_holder(locks: HostLocks) -> None:
    held = locks.acquire(["web1"], holder="manual run by alice (ident 42)")
    try:
        with pytest.raises(HostBusyError) as caught:
            locks.acquire(["web1"], holder="engine")
        assert caught.value.host == "web1"
        assert caught.value.holder == "manual run by alice (ident 42)"
        assert str(caught.value) == (
            "host web1 is busy: manual run by alice (ident 42) holds its lock"
        )
    finally:
        held.release()


def test_a_shorter_holder_overwrites_a_longer_one(locks: HostLocks) -> None:
    locks.acquire(["web1"], holder="a very long holder description").release()
    held = locks.acquire(["web1"], holder="short")
    try:
        with pytest.raises(HostBusyError) as caught:
            locks.acquire(["web1"], holder="other")
        assert caught.value.holder == "short"
    finally:
        held.release()


def test_all_or_nothing(locks: HostLocks) -> None:
    busy = locks.acquire(["web2"], holder="run busy")
    try:
        # web1 sorts first and is taken, then web2 is busy: web1 must be let go again.
        with pytest.raises(HostBusyError) as caught:
            locks.acquire(["web1", "web2"], holder="run both")
        assert caught.value.host == "web2"
        assert caught.value.holder == "run busy"
        free = locks.acquire(["web1"], holder="run one")
        free.release()
    finally:
        busy.release()


def test_lock_held_by_another_process(
    locks: HostLocks, child_holding: subprocess.Popen[str]
) -> None:
    with pytest.raises(HostBusyError) as caught:
        locks.acquire(["web3", "web2"], holder="engine")
    assert caught.value.host == "web2"
    assert caught.value.holder == "run child-7"
    # web3 was free, taken, and released again when web2 turned out busy.
    locks.acquire(["web3"], holder="engine").release()
    assert child_holding.poll() is None


def test_lock_freed_when_the_holder_dies(
    locks: HostLocks, child_holding: subprocess.Popen[str]
) -> None:
    with pytest.raises(HostBusyError):
        locks.acquire(["web1"], holder="engine")
    child_holding.kill()
    child_holding.wait(timeout=10)
    held = locks.acquire(["web1", "web2"], holder="engine")
    assert held.hosts == ("web1", "web2")
    assert (locks.directory / "web1.lock").read_text() == "engine"
    held.release()
