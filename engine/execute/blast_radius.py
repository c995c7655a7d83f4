"""Blast radius: how many hosts, fleet-wide and per inventory group, may be remediated at once.

Pure. The gate's ``max_concurrent`` check counts incidents already remediating in the
store, which is 0 for every host decided in the same tick; this counts what is in flight
and what this tick has already released as well, so a wave of hosts decided together
still starts at most ``max_concurrent`` of them, and at most ``max_group_percent`` of any
group. The others wait their turn.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

# Ansible's implicit group: every host not in another group, not a unit anyone sizes.
_IMPLICIT = frozenset({"all", "ungrouped"})


@dataclass(frozen=True, slots=True)
class BlastRadius:
    """The limits, and the inventory's groups they apply to."""

    max_concurrent: int
    max_group_percent: float
    groups: Mapping[str, Sequence[str]]  # host -> its groups

    def group_limit(self, size: int) -> int:
        """Hosts of a group of ``size`` that may be remediated at once (at least one)."""
        return max(1, math.floor(size * self.max_group_percent / 100 + 1e-9))

    def too_wide(self, hosts: Sequence[str]) -> str | None:
        """Why these hosts may not all be remediated at once (a hand run's check), or None."""
        if len(hosts) > self.max_concurrent:
            return f"{len(hosts)} hosts at once, max_concurrent is {self.max_concurrent}"
        sizes = Counter(g for gs in self.groups.values() for g in gs if g not in _IMPLICIT)
        chosen = Counter(g for h in hosts for g in self.groups.get(h, ()) if g not in _IMPLICIT)
        for group, count in sorted(chosen.items()):
            limit = self.group_limit(sizes[group])
            if count > limit:
                return (
                    f"{count} of the {sizes[group]} hosts of group {group} at once, "
                    f"max_group_percent {self.max_group_percent:g}% allows {limit}"
                )
        return None

    def admit(
        self, candidates: Sequence[str], in_flight: Collection[str]
    ) -> tuple[list[str], dict[str, str]]:
        """The candidates that may start now, in order, and why each other one waits."""
        sizes = Counter(g for gs in self.groups.values() for g in gs if g not in _IMPLICIT)
        busy = Counter(
            g for host in in_flight for g in self.groups.get(host, ()) if g not in _IMPLICIT
        )
        running = len(set(in_flight))
        admitted: list[str] = []
        waiting: dict[str, str] = {}
        for host in candidates:
            if running >= self.max_concurrent:
                waiting[host] = (
                    f"{running} hosts already being remediated (max_concurrent "
                    f"{self.max_concurrent}): waiting for a slot"
                )
                continue
            full = [
                group
                for group in self.groups.get(host, ())
                if group not in _IMPLICIT and busy[group] >= self.group_limit(sizes[group])
            ]
            if full:
                group = full[0]
                waiting[host] = (
                    f"{busy[group]} of the {sizes[group]} hosts of group {group} already being "
                    f"remediated (max_group_percent {self.max_group_percent:g}%): waiting"
                )
                continue
            admitted.append(host)
            running += 1
            for group in self.groups.get(host, ()):
                busy[group] += 1
        return admitted, waiting
