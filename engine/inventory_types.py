"""The hosts AutoSRE may touch, as read from an inventory (engine/inventory.py reads them,
engine/inventory_cache.py keeps them between starts)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from engine.metrics.series_map import HostKeys, SeriesMap


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
