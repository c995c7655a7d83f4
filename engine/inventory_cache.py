"""A private cache of the parsed inventory, so that a big fleet's start-up skips
``ansible-inventory`` (measured: 3 s idle and up to 71 s on a busy machine at 10,000
hosts, against a few ms for a cache hit; see bench/waves.py).

An entry is keyed by a digest of everything ansible-inventory reads: the inventory
file(s) and the ``group_vars``/``host_vars`` trees beside them (content, not mtime), the
ansible.cfg files it may read, the environment it gets, ansible-core's version and this
format's. Only static inventories (INI or YAML files) are cached: a script or an
inventory plugin answers from elsewhere, so its files say nothing of its answer.

An entry holds what the engine keeps of each host (name, address, connection, groups,
labels, instance), never a variable's value beyond those. An inventory with
credential-named variables (``Inventory.secrets`` not empty) is never cached: the
redactor needs those values, and they must not lie on disk in clear. Entries are files
of this user, mode 0600, in a 0700 directory; anything else found there is ignored.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import stat
from collections.abc import Iterator, Mapping
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from engine.execute.scratch import ensure_private
from engine.inventory_types import Inventory, InventoryHost

CACHE_FORMAT = 1
# A YAML inventory that names a plugin (constructed, aws_ec2, ...) is not static.
_PLUGIN_LINE = re.compile(rb"^plugin\s*:", re.MULTILINE)
_VARS_DIRS = ("group_vars", "host_vars")


def _files_under(root: Path) -> Iterator[Path]:
    """Every file under ``root`` but hidden ones (Ansible skips those, and a checkout's
    ``.git`` is none of its business), in a stable order, symlinks followed as Ansible does."""
    for parent, dirs, names in os.walk(root, followlinks=True):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if not name.startswith("."):
                yield Path(parent) / name


def inventory_sources(path: Path) -> list[Path] | None:
    """The inventory files of ``path`` (itself, or the files of a directory, vars trees
    left out), or None when one is not static (a script, a plugin) and cannot be cached."""
    if not path.is_dir():
        sources = [path]
    else:
        sources = [
            source
            for source in _files_under(path)
            if not set(source.relative_to(path).parts[:-1]) & set(_VARS_DIRS)
        ]
    for source in sources:
        if source.stat().st_mode & 0o111 or _PLUGIN_LINE.search(source.read_bytes()):
            return None
    return sources


def inventory_files(path: Path) -> list[Path] | None:
    """Every file ansible-inventory reads for ``path``: its sources and the vars trees
    beside them; None when it is not static."""
    found = inventory_sources(path)
    if found is None:
        return None
    base = path if path.is_dir() else path.parent
    for tree in _VARS_DIRS:
        if (base / tree).is_dir():
            found.extend(_files_under(base / tree))
    return found


def sources_digest(path: Path, env: Mapping[str, str], *, cwd: Path | None = None) -> str | None:
    """The cache key for ``path`` read with ``env``, or None when it cannot be cached."""
    try:
        files = inventory_files(path)
        if files is None:
            return None
        digest = hashlib.sha256()

        def add(label: str, data: bytes) -> None:
            digest.update(f"{label}\0{len(data)}\0".encode())
            digest.update(data)

        add("format", str(CACHE_FORMAT).encode())
        add("ansible-core", _ansible_version().encode())
        add("path", str(path.absolute()).encode())
        add("env", json.dumps(sorted(env.items())).encode())
        for config in _config_files(env, cwd or Path.cwd()):
            if config.is_file():
                add(f"config {config}", config.read_bytes())
        for file in files:
            add(f"file {file}", file.read_bytes())
    except OSError:
        return None  # unreadable now: ansible-inventory will say why
    return digest.hexdigest()


def _ansible_version() -> str:
    try:
        return version("ansible-core")
    except PackageNotFoundError:
        return "unknown"


def _config_files(env: Mapping[str, str], cwd: Path) -> list[Path]:
    """Where Ansible may read its configuration from (it takes the first that exists)."""
    found = [Path(env["ANSIBLE_CONFIG"])] if env.get("ANSIBLE_CONFIG") else []
    found.append(cwd / "ansible.cfg")
    if env.get("HOME"):
        found.append(Path(env["HOME"]) / ".ansible.cfg")
    found.append(Path("/etc/ansible/ansible.cfg"))
    return found


def _entry(cache_dir: Path, path: Path) -> Path:
    # One entry per inventory path: a changed inventory replaces its entry, never adds one.
    name = hashlib.sha256(str(path.absolute()).encode()).hexdigest()[:32]
    return cache_dir / f"inventory-{name}.json"


def _is_private_file(path: Path) -> bool:
    info = os.lstat(path)
    return stat.S_ISREG(info.st_mode) and info.st_uid == os.getuid() and not info.st_mode & 0o077


def read_cached(cache_dir: Path, path: Path, digest: str) -> Inventory | None:
    """The inventory cached for ``path`` under ``digest``, or None (absent, stale, foreign)."""
    entry = _entry(cache_dir, path)
    try:
        if not _is_private_file(entry):
            return None
        data = json.loads(entry.read_text(encoding="utf-8"))
        if data.get("digest") != digest:
            return None
        hosts = {h["name"]: _host(h) for h in data["hosts"]}
    except (OSError, ValueError, KeyError, TypeError):
        return None  # a cache never stops start-up: parse again
    return Inventory(path=path, hosts=hosts) if hosts else None


def _host(data: Mapping[str, Any]) -> InventoryHost:
    return InventoryHost(
        name=str(data["name"]),
        address=str(data["address"]),
        connection=data["connection"],
        groups=tuple(data["groups"]),
        labels=dict(data["labels"]),
        instance=data["instance"],
    )


def write_cached(cache_dir: Path, inventory: Inventory, digest: str) -> bool:
    """Keep ``inventory`` for the next start unless it holds secrets; True when written.
    Any failure to write only means no cache."""
    entry = _entry(cache_dir, inventory.path)
    if inventory.secrets:
        with contextlib.suppress(OSError):
            entry.unlink(missing_ok=True)
        return False
    hosts = [
        {
            "name": h.name,
            "address": h.address,
            "connection": h.connection,
            "groups": list(h.groups),
            "labels": dict(h.labels),
            "instance": h.instance,
        }
        for h in inventory.hosts.values()
    ]
    text = json.dumps({"digest": digest, "hosts": hosts}, separators=(",", ":"))
    partial = entry.with_name(f"{entry.name}.{os.getpid()}.tmp")
    try:
        cache_dir.parent.mkdir(parents=True, exist_ok=True)
        ensure_private(cache_dir)
        partial.unlink(missing_ok=True)  # a crashed write's leftover: made anew, mode 0600
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        partial.replace(entry)  # readers see the old entry or the new one, whole
    except OSError:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        return False
    return True
