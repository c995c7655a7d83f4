"""Several engine replicas splitting one fleet on PostgreSQL, measured side by side.

Each replica is an engine process of its own (bench/scale.py's child, with
``AUTOSRE_REPLICA_ID=r0``, ``r1``, ...) on one fresh database. They split the inventory
through host leases; each ticks until it holds its share, waits for the others (so that all
measure at once), ticks and measures, writes its result, and keeps its hosts until every
replica is done (so that none gains another's hosts mid-measure). Bounded; stopped by pid.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 900.0  # settling, ticking and the web-less report, for every replica
STAGGER = 15.0  # seconds between two replicas' starts


def run_replicas(argv: list[str], replicas: int, work: Path) -> dict[str, Any]:
    """Run ``replicas`` engines with the child's ``argv`` (store included); their results
    by name, or ``{"error": why}``."""
    from engine.store.migrate import migrate_to_head

    store = next(arg.split("=", 1)[1] for arg in argv if arg.startswith("--store="))
    migrate_to_head(store)  # once, as `autosre db upgrade` before the replicas start
    barrier = work / "barrier"
    barrier.mkdir(parents=True)
    names = [f"r{index}" for index in range(replicas)]
    with ExitStack() as stack:
        procs: list[subprocess.Popen[bytes]] = []
        for index, name in enumerate(names):
            if index:
                # Started together on an empty lease table, two engines' first claims of
                # 10,000 hosts deadlock in PostgreSQL (engine/lease/share.py): one a little
                # later, as replicas are started in practice.
                time.sleep(STAGGER)
            data = work / name
            data.mkdir()
            log = stack.enter_context((work / f"{name}.log").open("wb"))
            proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bench.scale",
                    *argv,
                    f"--data-dir={data}",
                    f"--replica={name}",
                    f"--barrier={barrier}",
                ],
                cwd=ROOT,
                stdout=subprocess.DEVNULL,
                stderr=log,
            )
            stack.callback(_stop, proc)
            procs.append(proc)
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            if all((barrier / f"{name}.json").exists() for name in names):
                break
            if any(proc.poll() not in (None, 0) for proc in procs):
                return {"error": f"a replica failed; logs kept in {_keep(work)}"}
            time.sleep(0.5)
        else:
            return {"error": f"not done within {TIMEOUT:g} s; logs kept in {_keep(work)}"}
        (barrier / "stop").touch()
        for proc in procs:
            proc.wait(timeout=60)
    return {name: json.loads((barrier / f"{name}.json").read_text()) for name in names}


def _keep(work: Path) -> Path:
    """Copy the replicas' logs out of the bench's temporary directory; where they are."""
    kept = Path(tempfile.mkdtemp(prefix="autosre-bench-replicas-"))
    for log in work.glob("*.log"):
        shutil.copy(log, kept / log.name)
    return kept


def _stop(proc: subprocess.Popen[bytes]) -> None:
    """Stop one replica by pid: SIGTERM, then SIGKILL after a bounded wait."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)
