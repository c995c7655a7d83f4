"""--limit for hand runs: names, groups and ranges become an explicit host list; Ansible's
other pattern syntax is refused before anything runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from engine.errors import RefusedError
from engine.execute.blast_radius import BlastRadius
from engine.execute.host_patterns import MAX_EXPANSION, resolve_limit
from engine.inventory import Inventory, parse_listing

NAMES = ["web01", "web02", "web03", "web04", "db1", "db2", "cache-a", "cache-b"]


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    listing = {
        "_meta": {"hostvars": {}},
        "all": {"children": ["web", "db", "ungrouped"]},
        "web": {"hosts": NAMES[:4]},
        "db": {"hosts": ["db1", "db2"]},
        "ungrouped": {"hosts": ["cache-a", "cache-b"]},
    }
    return parse_listing(listing, path=Path("inv"))


@pytest.mark.parametrize(
    ("limit", "hosts"),
    [
        ("db1", ["db1"]),
        ("web", ["web01", "web02", "web03", "web04"]),
        ("web[01:03]", ["web01", "web02", "web03"]),
        ("web[1:3]", []),  # no zero padding: web1..web3 are not hosts
        ("cache-[a:b]", ["cache-a", "cache-b"]),
        ("db, web[02:02] ,db1", ["db1", "db2", "web02"]),
        ("web[03:09]", ["web03", "web04"]),  # the names that exist
    ],
)
def test_names_groups_and_ranges(inventory: Inventory, limit: str, hosts: list[str]) -> None:
    if not hosts:
        with pytest.raises(RefusedError, match="the range names no inventory host"):
            resolve_limit(limit, inventory)
        return
    assert resolve_limit(limit, inventory) == hosts


@pytest.mark.parametrize(
    ("limit", "why"),
    [
        ("web*", "only host names, group names and ranges"),
        ("!db1", "only host names, group names and ranges"),
        ("web:&db", "only host names, group names and ranges"),
        ("~web.*", "only host names, group names and ranges"),
        ("all", "not in the inventory (no host or group of that name)"),
        ("web99", "not in the inventory (no host or group of that name)"),
        ("web[3:1]", "the range ends before it starts"),
        ("web[1:a]", "range bounds must be two numbers or two letters"),
        ("web[1:3", "a range is written like web[1:3]"),
        (f"w[0:{MAX_EXPANSION + 5}]", f"more than {MAX_EXPANSION} names"),
        ("{{ lookup('pipe','id') }}", "only host names, group names and ranges"),
        (" , ", "names no host"),
    ],
)
def test_everything_else_is_refused(inventory: Inventory, limit: str, why: str) -> None:
    with pytest.raises(RefusedError, match=re.escape(why)):
        resolve_limit(limit, inventory)


def test_a_hand_run_wider_than_the_blast_radius_is_refused(inventory: Inventory) -> None:
    groups = {name: host.groups for name, host in inventory.hosts.items()}
    radius = BlastRadius(max_concurrent=3, max_group_percent=50, groups=groups)
    assert radius.too_wide(["web01", "db1"]) is None
    assert radius.too_wide(["web01", "web02", "web03"]) == (
        "3 of the 4 hosts of group web at once, max_group_percent 50% allows 2"
    )
    assert radius.too_wide(["web01", "db1", "cache-a", "cache-b"]) == (
        "4 hosts at once, max_concurrent is 3"
    )
