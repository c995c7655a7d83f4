"""Trust levels: how far the engine may go on its own with each action, per host group.

``observe`` detects and records only; ``propose`` makes every proposal wait for a human,
however confident the planner; ``auto`` acts within the confidence bands. An action the
policy gives no level is ``propose``: a new action never acts on its own by accident.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, field_validator

from engine.errors import PolicyError

GROUP_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.")


class TrustLevel(StrEnum):
    """How far the engine may go on its own, from least to most."""

    OBSERVE = "observe"
    PROPOSE = "propose"
    AUTO = "auto"


DEFAULT_TRUST = TrustLevel.PROPOSE
# Least trust first: of several group overrides, the most cautious wins.
ORDER = (TrustLevel.OBSERVE, TrustLevel.PROPOSE, TrustLevel.AUTO)


class Trust(BaseModel):
    """The policy's ``trust`` section: a level per action, and per inventory group overrides."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    actions: dict[str, TrustLevel] = {}
    groups: dict[str, dict[str, TrustLevel]] = {}

    @field_validator("groups")
    @classmethod
    def _group_names(
        cls, value: dict[str, dict[str, TrustLevel]]
    ) -> dict[str, dict[str, TrustLevel]]:
        for name in value:
            if not name or not set(name) <= GROUP_NAME_CHARS:
                raise ValueError(f"{name!r} is not an inventory group name")
        return value

    def unknown_action(self, actions: Collection[str]) -> tuple[str, str] | None:
        """The first (field, reason) naming an action the whitelist does not have, or None."""
        for name in self.actions:
            if name not in actions:
                return f"trust.actions.{name}", f"{name!r} is not in actions"
        for group, levels in self.groups.items():
            for name in levels:
                if name not in actions:
                    return f"trust.groups.{group}.{name}", f"{name!r} is not in actions"
        return None

    def level(self, action: str, groups: Collection[str] = ()) -> TrustLevel:
        """The level in force for an action on a host in these groups: a group's override
        beats the action's level; of several overrides the most cautious wins."""
        overrides = [self.groups[g][action] for g in groups if action in self.groups.get(g, {})]
        if overrides:
            return min(overrides, key=ORDER.index)
        return self.actions.get(action, DEFAULT_TRUST)

    def table(self, actions: Collection[str]) -> dict[str, tuple[TrustLevel, dict[str, str]]]:
        """Per action: its level and its group overrides (group -> level), for listings."""
        return {
            name: (
                self.actions.get(name, DEFAULT_TRUST),
                {
                    g: str(levels[name])
                    for g, levels in sorted(self.groups.items())
                    if name in levels
                },
            )
            for name in actions
        }


def check_groups(trust: Trust, known: Collection[str], *, source: str) -> None:
    """Refuse an override for a group the inventory does not define (PolicyError naming it)."""
    for group in trust.groups:
        if group not in known:
            raise PolicyError(
                source, f"trust.groups.{group}", f"{group!r} is not a group of the inventory"
            )


def inventory_groups(hosts: Mapping[str, object]) -> frozenset[str]:
    """Every group some host of the inventory is in (hosts: name -> Host with ``groups``)."""
    return frozenset(g for host in hosts.values() for g in getattr(host, "groups", ()))
