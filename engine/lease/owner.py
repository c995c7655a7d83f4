"""Who holds a lease: a name that says which machine and process, so that a process on the
same machine can tell a holder that died from one that still runs."""

from __future__ import annotations

import hashlib
import os
import re
import socket
import uuid
from pathlib import Path

import psutil

# A replica's name as an operator sets it (AUTOSRE_REPLICA_ID): shown in /healthz and /metrics.
REPLICA_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,99}$")


def default_replica_id(data_dir: Path) -> str:
    """This machine's name and a digest of the data dir: stable across restarts, so a
    restarted replica finds its own leases, and distinct for two replicas on one machine."""
    digest = hashlib.sha256(str(data_dir.resolve()).encode()).hexdigest()[:8]
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:80] or "host"
    return f"{name}-{digest}"


def process_owner(replica: str) -> str:
    """The owner name of this process's leases: replica, machine, pid and a random token (a
    reused pid is never mistaken for the process that died)."""
    return f"{replica}@{socket.gethostname()}/{os.getpid()}/{uuid.uuid4().hex[:8]}"


def dead_here(owner: str) -> bool:
    """True when ``owner`` names a process of this machine that no longer runs (or is not
    the process that took the lease)."""
    _, _, where = owner.rpartition("@")
    machine, _, rest = where.partition("/")
    pid, _, _ = rest.partition("/")
    if machine != socket.gethostname() or not pid.isdigit():
        return False
    return int(pid) != os.getpid() and not psutil.pid_exists(int(pid))
