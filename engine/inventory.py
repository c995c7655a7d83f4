"""Read an Ansible inventory (any format Ansible reads) into the hosts AutoSRE may touch.

``ansible-inventory --list`` does the parsing, so the engine sees exactly what
Ansible will see; only names, addresses, connection and labels are kept. Values of
variables named like credentials (``db_password``, ``ansible_become_password``) are
kept only in ``Inventory.secrets``, so that they can be redacted wherever a playbook
prints them.

ansible-inventory gets a time limit that grows with the inventory (10,000 hosts take
minutes on a busy machine), and, given a cache dir, a static inventory whose files have
not changed is read from engine/inventory_cache.py instead of parsed again.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.errors import InventoryError
from engine.inventory_cache import read_cached, sources_digest, write_cached
from engine.inventory_types import Inventory, InventoryHost
from engine.redact import looks_secret
from engine.settings import child_environment

__all__ = ["Inventory", "InventoryHost", "default_timeout", "load_inventory", "parse_listing"]

# ansible-inventory's time limit: measured 3 s idle and 19-71 s on a busy 2-core machine
# for 10,000 INI hosts (33 bytes each), so the limit grows with the inventory's size.
BASE_TIMEOUT = 60.0  # seconds
BYTES_PER_SECOND = 4096.0
# The setting that overrides the limit (engine/settings.py), named in the error.
TIMEOUT_SETTING = "AUTOSRE_INVENTORY_TIMEOUT"
# Names that Ansible would read as a pattern (web*, a:b, !x, &y) are refused: --limit
# must only ever select exactly the hosts the policy decided on.
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
# A label value as exporters write instances: host, IPv4/IPv6 address, optional port.
INSTANCE = re.compile(r"^[A-Za-z0-9.:\[\]_-]{1,300}$")


def _collect_hosts(listing: Mapping[str, Any]) -> set[str]:
    names = set(listing.get("_meta", {}).get("hostvars", {}))
    for group, body in listing.items():
        if group != "_meta" and isinstance(body, dict):
            names.update(body.get("hosts", []))
    return names


def _groups_of(listing: Mapping[str, Any]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for group, body in listing.items():
        if group in {"_meta", "all"} or not isinstance(body, dict):
            continue
        for name in body.get("hosts", []):
            groups.setdefault(name, []).append(group)
    return groups


def _secret_values(data: Any) -> set[str]:
    """Values under credential-named keys, at any depth of a variables mapping."""
    found: set[str] = set()
    if isinstance(data, dict):
        for key, value in data.items():
            if looks_secret(str(key)):
                found |= _leaves(value)
            else:
                found |= _secret_values(value)
    elif isinstance(data, list):
        for item in data:
            found |= _secret_values(item)
    return found


def _leaves(value: Any) -> set[str]:
    if isinstance(value, dict):
        if "__ansible_vault" in value:
            return set()  # ciphertext; the plaintext is not known here
        return {leaf for item in value.values() for leaf in _leaves(item)}
    if isinstance(value, list):
        return {leaf for item in value for leaf in _leaves(item)}
    if value is None or isinstance(value, bool):
        return set()
    return {str(value)}


def parse_listing(listing: Mapping[str, Any], *, path: Path) -> Inventory:
    """Build an Inventory from ``ansible-inventory --list`` JSON output."""
    hostvars = listing.get("_meta", {}).get("hostvars", {})
    groups = _groups_of(listing)
    hosts: dict[str, InventoryHost] = {}
    for name in sorted(_collect_hosts(listing)):
        if not HOST_NAME.fullmatch(name):
            raise InventoryError(f"{path}: host {name!r}: not a plain host name")
        hvars = hostvars.get(name, {})
        labels = hvars.get("autosre_labels", {})
        if not isinstance(labels, dict):
            raise InventoryError(f"{path}: host {name}: autosre_labels must be a mapping")
        instance = hvars.get("autosre_instance")
        if instance is not None and not (
            isinstance(instance, str) and INSTANCE.fullmatch(instance)
        ):
            raise InventoryError(
                f"{path}: host {name}: autosre_instance must be the instance label of its "
                f"series, like 10.0.0.5:9100 (got {str(instance)[:80]!r})"
            )
        hosts[name] = InventoryHost(
            name=name,
            instance=instance,
            address=str(hvars.get("ansible_host", name)),
            connection=hvars.get("ansible_connection"),
            groups=tuple(sorted(groups.get(name, []))),
            labels={str(k): str(v) for k, v in labels.items()},
        )
    if not hosts:
        raise InventoryError(f"{path}: no hosts in the inventory")
    secrets = _secret_values(hostvars)
    for group, body in listing.items():
        if group != "_meta" and isinstance(body, dict):
            secrets |= _secret_values(body.get("vars", {}))
    return Inventory(path=path, hosts=hosts, secrets=frozenset(secrets))


def default_timeout(path: Path) -> float:
    """How long ansible-inventory may take for ``path``: a minute, plus a second for every
    4 KB of inventory (about 120 hosts), so 10,000 hosts get over two minutes."""
    try:
        files = [path] if path.is_file() else [p for p in path.rglob("*") if p.is_file()]
        size = sum(file.stat().st_size for file in files)
    except OSError:
        size = 0
    return BASE_TIMEOUT + size / BYTES_PER_SECOND


def load_inventory(
    path: Path, *, timeout: float | None = None, cache_dir: Path | None = None
) -> Inventory:
    """Parse an inventory with ansible-inventory; raise InventoryError naming the problem.

    ``timeout``: seconds ansible-inventory may take (default: ``default_timeout``);
    ``cache_dir``: where the parsed hosts are kept between starts (none by default)."""
    if not path.exists():
        raise InventoryError(f"{path}: no such file or directory")
    # The allow-listed environment, never the engine's own (its keys stay in the engine).
    env = child_environment()
    # Without these Ansible only warns about a file it cannot parse and returns nothing.
    env.update(
        ANSIBLE_INVENTORY_UNPARSED_FAILED="1",
        ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="1",
        ANSIBLE_NOCOLOR="1",
    )
    digest = sources_digest(path, env) if cache_dir is not None else None
    if cache_dir is not None and digest is not None:
        cached = read_cached(cache_dir, path, digest)
        if cached is not None:
            return cached
    limit = default_timeout(path) if timeout is None else timeout
    inventory = parse_listing(_list(path, env, limit), path=path)
    # Written only if the files did not change while ansible-inventory read them.
    if cache_dir is not None and digest is not None and sources_digest(path, env) == digest:
        write_cached(cache_dir, inventory, digest)
    return inventory


def _list(path: Path, env: Mapping[str, str], timeout: float) -> Any:
    """``ansible-inventory --list`` of ``path``, decoded."""
    tool = Path(sys.executable).parent / "ansible-inventory"
    try:
        done = subprocess.run(
            [str(tool) if tool.exists() else "ansible-inventory", "--list", "-i", str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env),
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise InventoryError(
            f"{path}: ansible-inventory did not finish within {timeout:g} s (the limit for "
            f"this inventory's size; raise it with {TIMEOUT_SETTING}=<seconds>)"
        ) from None
    except OSError as exc:
        raise InventoryError(f"{path}: ansible-inventory failed: {exc}") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("[ERROR]")]
        reason = (errors or lines or [f"exit status {done.returncode}"])[0]
        for prefix in ("[ERROR]:", "[WARNING]:"):
            reason = reason.removeprefix(prefix).strip()
        raise InventoryError(f"{path}: {reason}")
    try:
        return json.loads(done.stdout)
    except json.JSONDecodeError:
        raise InventoryError(f"{path}: ansible-inventory did not print JSON") from None
