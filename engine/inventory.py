"""Read an Ansible inventory (any format Ansible reads) into the hosts AutoSRE may touch.

``ansible-inventory --list`` does the parsing, so the engine sees exactly what
Ansible will see; only names, addresses, connection and labels are kept. Values of
variables named like credentials (``db_password``, ``ansible_become_password``) are
kept only in ``Inventory.secrets``, so that they can be redacted wherever a playbook
prints them.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import InventoryError
from engine.metrics.series_map import HostKeys, SeriesMap
from engine.redact import looks_secret
from engine.settings import child_environment

# Names that Ansible would read as a pattern (web*, a:b, !x, &y) are refused: --limit
# must only ever select exactly the hosts the policy decided on.
HOST_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,252}$")
# A label value as exporters write instances: host, IPv4/IPv6 address, optional port.
INSTANCE = re.compile(r"^[A-Za-z0-9.:\[\]_-]{1,300}$")


@dataclass(frozen=True, slots=True)
class InventoryHost:
    """One host as the engine knows it."""

    name: str
    address: str
    connection: str | None = None
    groups: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    instance: str | None = None  # autosre_instance: its series' label value, port included


@dataclass(frozen=True, slots=True)
class Inventory:
    """The hosts of one inventory source."""

    path: Path
    hosts: Mapping[str, InventoryHost]
    # Values of credential-named host and group variables: for redaction, nothing else.
    secrets: frozenset[str] = field(default=frozenset(), repr=False)

    def series_map(self) -> SeriesMap:
        """Which host each metrics series belongs to; InventoryError if that is ambiguous."""
        return SeriesMap.build(
            (HostKeys(h.name, h.address, h.instance) for h in self.hosts.values()),
            source=str(self.path),
        )

    def local_host(self) -> str | None:
        """The host that is this machine: local connection, or named localhost."""
        for host in self.hosts.values():
            if host.connection == "local" or host.address in {"localhost", "127.0.0.1"}:
                return host.name
        return None

    def unknown(self, names: Iterable[str]) -> list[str]:
        """The names that are not hosts of this inventory."""
        return [name for name in names if name not in self.hosts]


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


def load_inventory(path: Path, *, timeout: float = 60.0) -> Inventory:
    """Parse an inventory with ansible-inventory; raise InventoryError naming the problem."""
    if not path.exists():
        raise InventoryError(f"{path}: no such file or directory")
    tool = Path(sys.executable).parent / "ansible-inventory"
    # The allow-listed environment, never the engine's own (its keys stay in the engine).
    env = child_environment()
    # Without these Ansible only warns about a file it cannot parse and returns nothing.
    env.update(
        ANSIBLE_INVENTORY_UNPARSED_FAILED="1",
        ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED="1",
        ANSIBLE_NOCOLOR="1",
    )
    try:
        done = subprocess.run(
            [str(tool) if tool.exists() else "ansible-inventory", "--list", "-i", str(path)],
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise InventoryError(f"{path}: ansible-inventory failed: {exc}") from None
    if done.returncode != 0:
        lines = [ln.strip() for ln in done.stderr.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("[ERROR]")]
        reason = (errors or lines or [f"exit status {done.returncode}"])[0]
        for prefix in ("[ERROR]:", "[WARNING]:"):
            reason = reason.removeprefix(prefix).strip()
        raise InventoryError(f"{path}: {reason}")
    try:
        listing = json.loads(done.stdout)
    except json.JSONDecodeError:
        raise InventoryError(f"{path}: ansible-inventory did not print JSON") from None
    return parse_listing(listing, path=path)
