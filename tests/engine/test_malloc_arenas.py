"""The engine process keeps one malloc arena (engine/malloc_arenas.py), unless the operator
set MALLOC_ARENA_MAX: counted by glibc's own malloc_info after four threads allocated at once."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROBE = """
import ctypes, ctypes.util, sys, tempfile, threading
from engine.malloc_arenas import limit_arenas
done = limit_arenas() if sys.argv[1] == "limit" else None
barrier = threading.Barrier(4)
def work():
    barrier.wait()
    for _ in range(200):
        del [bytearray(4096) for _ in range(50)][:]
threads = [threading.Thread(target=work) for _ in range(4)]
for thread in threads: thread.start()
for thread in threads: thread.join()
libc = ctypes.CDLL(ctypes.util.find_library("c"))
libc.fopen.restype = ctypes.c_void_p
with tempfile.NamedTemporaryFile("r") as out:
    stream = ctypes.c_void_p(libc.fopen(out.name.encode(), b"w"))
    libc.malloc_info(0, stream)
    libc.fclose(stream)
    print(done, out.read().count("<heap nr="))
"""

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="glibc's malloc only")


def _arenas(mode: str, **env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "MALLOC_ARENA_MAX"}
    environ |= {"PYTHONPATH": str(ROOT), **env}
    done = subprocess.run(
        [sys.executable, "-c", PROBE, mode],
        capture_output=True,
        text=True,
        env=environ,
        timeout=60,
        check=True,
    )
    return done.stdout.strip()


def test_threads_share_one_arena_once_limited() -> None:
    assert _arenas("limit") == "True 1"
    unlimited, heaps = _arenas("none").split()
    assert unlimited == "None" and int(heaps) > 1  # what the limit prevents


def test_the_operator_s_setting_is_left_alone() -> None:
    assert _arenas("limit", MALLOC_ARENA_MAX="3") == "False 3"
