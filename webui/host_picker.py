"""The host picker of a run by hand: the inventory's hosts with what the picker filters on
(name, groups, state as last published), so it narrows a fleet the way the dashboard does.
static/host_picker.js filters the list in the page and selects all matching hosts.
"""

from __future__ import annotations

from typing import Any

from engine.read.hosts import host_statuses
from engine.types import HostStatus
from webui.db import components, get_sessions

IMPLICIT_GROUPS = ("all", "ungrouped")  # Ansible's: every host is in one of them


def picker_hosts() -> list[dict[str, Any]]:
    """The inventory's hosts by name, each with its groups and its published state
    (UNKNOWN without one)."""
    hosts = components().inventory.hosts
    states = host_statuses(get_sessions())  # one query: the status column alone
    return [
        {
            "name": name,
            "groups": [g for g in hosts[name].groups if g not in IMPLICIT_GROUPS],
            "state": states.get(name, HostStatus.UNKNOWN.value),
        }
        for name in sorted(hosts)
    ]


def picker_groups(hosts: list[dict[str, Any]]) -> list[str]:
    """Every group of the picker's hosts, by name."""
    return sorted({g for host in hosts for g in host["groups"]})
