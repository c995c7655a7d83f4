"""Which inventory host a Prometheus series belongs to, unambiguously or not at all.

A series' label (``instance="10.0.0.5:9100"``) is matched, in order, to: a host's
``autosre_instance`` inventory variable, exactly (port included); a host's name, or its
``ansible_host`` when no other host shares that address, with or without a port. Two hosts
claiming one label, or sharing an address without ``autosre_instance`` to tell them apart,
are refused when the map is built: a series silently credited to the wrong host would make
the engine act on a healthy host and leave the sick one alone.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from engine.errors import InventoryError


def strip_port(label_value: str) -> str:
    """Drop a trailing ``:port`` (``web1:9100`` → ``web1``, ``[::1]:9100`` → ``::1``)."""
    if label_value.startswith("["):
        end = label_value.find("]")
        rest = label_value[end + 1 :]
        if end > 1 and (not rest or (rest[0] == ":" and _is_port(rest[1:]))):
            return label_value[1:end]
        return label_value
    host, sep, port = label_value.rpartition(":")
    # More than one colon without brackets is a bare IPv6 address, not host:port.
    if sep and host and ":" not in host and _is_port(port):
        return host
    return label_value


def _is_port(text: str) -> bool:
    return text.isascii() and text.isdigit()


@dataclass(frozen=True, slots=True)
class HostKeys:
    """What identifies one host in metrics labels."""

    name: str
    address: str
    instance: str | None = None  # the inventory's autosre_instance, exact


@dataclass(frozen=True, slots=True)
class SeriesMap:
    """Label value → host: exact labels first, then names and unshared addresses."""

    exact: Mapping[str, str]  # full label values (autosre_instance) -> host
    bare: Mapping[str, str]  # names and unshared addresses, port stripped -> host
    hosts: tuple[str, ...]

    @classmethod
    def build(cls, keys: Iterable[HostKeys], *, source: str = "inventory") -> SeriesMap:
        """The map of these hosts; InventoryError naming the hosts when it would be ambiguous."""
        keys = list(keys)
        exact: dict[str, str] = {}
        for key in keys:
            if key.instance is None:
                continue
            other = exact.setdefault(key.instance, key.name)
            if other != key.name:
                raise InventoryError(
                    f"{source}: hosts {other} and {key.name} both set autosre_instance "
                    f"{key.instance!r}: each series must belong to one host"
                )
        bare: dict[str, str] = {key.name: key.name for key in keys}
        by_address: dict[str, list[HostKeys]] = defaultdict(list)
        for key in keys:
            if key.address != key.name:
                by_address[key.address].append(key)
        for address, sharing in sorted(by_address.items()):
            unnamed = [key.name for key in sharing if key.instance is None]
            if len(sharing) > 1 and unnamed:
                names = ", ".join(key.name for key in sharing)
                raise InventoryError(
                    f"{source}: hosts {names} share the address {address}, so their series "
                    "cannot be told apart by it: set autosre_instance on "
                    f"{', '.join(unnamed)} to the instance label of its series, port "
                    'included (autosre_instance="127.0.0.1:9101")'
                )
            owner = bare.get(address)
            if len(sharing) == 1 and owner is not None and owner != sharing[0].name:
                raise InventoryError(
                    f"{source}: host {sharing[0].name} has the address {address!r}, which is "
                    f"also the name of host {owner}: set autosre_instance on both"
                )
            if len(sharing) == 1:
                bare[address] = sharing[0].name
        return cls(
            exact=MappingProxyType(exact),
            bare=MappingProxyType(bare),
            hosts=tuple(sorted({key.name for key in keys})),
        )

    @classmethod
    def of_labels(cls, labels: Mapping[str, str]) -> SeriesMap:
        """A map from label values (port stripped) to hosts, as given (for tests and tools)."""
        return cls(
            exact=MappingProxyType({}),
            bare=MappingProxyType(dict(labels)),
            hosts=tuple(sorted(set(labels.values()))),
        )

    def host_of(self, label_value: str) -> str | None:
        """The host this label value belongs to, or None."""
        host = self.exact.get(label_value)
        if host is None:
            host = self.bare.get(label_value) or self.bare.get(strip_port(label_value))
        return host
