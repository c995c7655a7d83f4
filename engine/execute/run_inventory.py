"""A run's own inventory: only the hosts it targets, so that ansible-playbook does not parse
a big fleet's whole inventory again for every run (10,000 INI hosts: first event after
1.2 s instead of 0.4 s on an idle machine, far more on a busy one; see bench/waves.py).

The run must see exactly what it would have seen. So the minimal inventory keeps every
group, with its own vars and children (depth, ``ansible_group_priority`` and group
precedence unchanged), and the targeted hosts (plus ``localhost`` when the inventory
defines it, for ``delegate_to: localhost``) with their own vars, as
``ansible-inventory --list --export`` gives them with vars plugins held back. The
``group_vars``/``host_vars`` trees beside the inventory are linked beside the minimal
one, so Ansible reads them itself, at their own precedence.

What a minimal inventory cannot reproduce, it does not try: the full inventory is used
when the inventory is small (nothing to win), not static (a script or plugin answers
anew each run), holds vault or ``!unsafe`` values (JSON would lose their tags), when the
playbook dir has vars trees of its own (their precedence interleaves with the
inventory's), or when the playbook may look past its own hosts or its own file
(``groups``, ``hostvars``, ``inventory_dir``, roles, imports, ``delegate_to`` elsewhere).
The export is taken by the first run that needs it after each change of the
inventory's content (1.4 s idle at 10,000 hosts), and kept in memory only. The minimal
file holds host vars in clear: it lives in the run's private scratch, mode 0600.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from engine.inventory import default_timeout
from engine.inventory_cache import inventory_sources, sources_digest
from engine.settings import child_environment

# Below this many hosts ansible-playbook parses the inventory in well under a second.
MIN_HOSTS = 1000
# Fewer bytes than this per host wanted, and the inventory is too small to be worth the
# export (0.5 s and up, once per content): judged without running Ansible at all.
_BYTES_PER_HOST = 4
# What in a playbook reaches past its own hosts' vars, or into files this check cannot see.
_LOOKS_ELSEWHERE = re.compile(
    r"\b(groups|hostvars|inventory_dir|inventory_file|ansible_inventory_sources|roles|"
    r"import_\w+|include_\w+|delegate_to)\b"
)
_DELEGATE_LOCAL = re.compile(r"\bdelegate_to:\s*[\"']?localhost[\"']?\s*$", re.MULTILINE)
_TAGGED = re.compile(rb"!unsafe|!vault|\$ANSIBLE_VAULT")
_VARS_DIRS = ("group_vars", "host_vars")
# The export must hold the inventory files' own vars only: the vars trees are linked.
_EXPORT_ENV = {
    "ANSIBLE_VARS_PLUGIN_STAGE": "task",
    "ANSIBLE_INVENTORY_UNPARSED_FAILED": "1",
    "ANSIBLE_NOCOLOR": "1",
}


def playbook_stays_home(playbook: Path) -> bool:
    """True when the playbook refers to no other host's vars, no group list, no inventory
    location and no file of tasks beyond itself (``delegate_to: localhost`` allowed)."""
    try:
        text = playbook.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False
    if (playbook.parent / "group_vars").exists() or (playbook.parent / "host_vars").exists():
        return False
    return not _LOOKS_ELSEWHERE.search(_DELEGATE_LOCAL.sub("", text))


class RunInventories:
    """Writes minimal inventories for runs against one inventory; the export it needs is
    taken once per content of the inventory's files and kept in memory, never on disk."""

    def __init__(self, inventory_path: Path, *, min_hosts: int = MIN_HOSTS) -> None:
        """``min_hosts``: the smallest inventory worth a minimal one."""
        self._path = inventory_path
        self._min_hosts = min_hosts
        self._lock = threading.Lock()  # runs of one executor may start together
        self._export: tuple[str, Mapping[str, Any]] | None = None

    def write(self, playbook: Path, hosts: Sequence[str], scratch: Path) -> Path | None:
        """A minimal inventory for ``hosts`` written under ``scratch``, or None when the run
        must use the full inventory (the module docstring says when)."""
        if not playbook_stays_home(playbook) or not self._big_enough():
            return None
        export = self._current_export()
        if export is None:
            return None
        hostvars = export.get("_meta", {}).get("hostvars", {})
        members = {h for body in export.values() for h in _body(body).get("hosts", [])}
        if len(members | set(hostvars)) < self._min_hosts or not set(hosts) <= members:
            return None
        wanted = set(hosts) | ({"localhost"} & members)
        target = scratch / "inventory"
        target.mkdir(mode=0o700)
        inventory = target / "hosts.yml"
        fd = os.open(inventory, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            yaml.safe_dump(minimal_document(export, wanted), handle, sort_keys=False)
        base = self._path if self._path.is_dir() else self._path.parent
        for tree in _VARS_DIRS:
            if (base / tree).is_dir():
                (target / tree).symlink_to((base / tree).absolute(), target_is_directory=True)
        return inventory

    def _big_enough(self) -> bool:
        try:
            size = sum(f.stat().st_size for f in inventory_sources(self._path) or [])
        except OSError:
            return False
        return size >= self._min_hosts * _BYTES_PER_HOST

    def _current_export(self) -> Mapping[str, Any] | None:
        env = {**child_environment(), **_EXPORT_ENV}
        with self._lock:
            digest = sources_digest(self._path, env)
            if digest is None or _has_tagged_values(self._path):
                return None
            if self._export is None or self._export[0] != digest:
                export = _export(self._path, env)
                if export is None:
                    return None
                self._export = (digest, export)
            return self._export[1]


def _has_tagged_values(path: Path) -> bool:
    """True when an inventory file holds a vault or ``!unsafe`` value (or cannot be read)."""
    try:
        return any(_TAGGED.search(f.read_bytes()) for f in inventory_sources(path) or [])
    except OSError:
        return True


def _export(path: Path, env: Mapping[str, str]) -> Mapping[str, Any] | None:
    """``ansible-inventory --list --export`` without vars plugins; None if it fails (the
    run then uses the full inventory, and Ansible says what is wrong)."""
    tool = Path(sys.executable).parent / "ansible-inventory"
    program = str(tool) if tool.exists() else "ansible-inventory"
    try:
        done = subprocess.run(
            [program, "--list", "--export", "-i", str(path)],
            capture_output=True,
            text=True,
            timeout=default_timeout(path),
            env=dict(env),
            check=False,
        )
        found = json.loads(done.stdout) if done.returncode == 0 else None
    except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
        return None
    return found if isinstance(found, dict) else None


def _body(body: Any) -> Mapping[str, Any]:
    return body if isinstance(body, dict) else {}


def minimal_document(export: Mapping[str, Any], wanted: set[str]) -> dict[str, Any]:
    """The YAML inventory holding every group of ``export`` and only the ``wanted`` hosts,
    each host's own vars given once."""
    hostvars = export.get("_meta", {}).get("hostvars", {})
    document: dict[str, Any] = {}
    placed: set[str] = set()
    for group, raw in export.items():
        body = _body(raw)
        if group == "_meta":
            continue
        entry: dict[str, Any] = {}
        if body.get("vars"):
            entry["vars"] = body["vars"]
        if body.get("children"):
            entry["children"] = dict.fromkeys(body["children"])
        hosts = [h for h in body.get("hosts", []) if h in wanted]
        if hosts:
            entry["hosts"] = {h: None if h in placed else hostvars.get(h) or None for h in hosts}
            placed.update(hosts)
        document[group] = entry or None
    return document
