"""Blast radius: fleet-wide and per-group limits on hosts remediated at once."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from engine.execute.blast_radius import BlastRadius

GROUPS = {
    "web1": ("web",),
    "web2": ("web",),
    "web3": ("web",),
    "web4": ("web",),
    "db1": ("db",),
    "db2": ("db",),
    "lone": ("ungrouped",),
}


def test_in_flight_and_this_ticks_admissions_count_against_max_concurrent() -> None:
    radius = BlastRadius(max_concurrent=3, max_group_percent=100, groups=GROUPS)
    admitted, waiting = radius.admit(["web2", "web3", "db1", "db2"], in_flight={"web1"})
    assert admitted == ["web2", "web3"]
    assert set(waiting) == {"db1", "db2"}
    assert "max_concurrent 3" in waiting["db1"]


def test_at_most_a_share_of_any_group_and_always_one() -> None:
    radius = BlastRadius(max_concurrent=100, max_group_percent=50, groups=GROUPS)
    admitted, waiting = radius.admit(["web1", "web2", "web3", "db1", "db2", "lone"], in_flight=())
    assert admitted == ["web1", "web2", "db1", "lone"]
    assert waiting["web3"].startswith("2 of the 4 hosts of group web already being remediated")
    assert "db2" in waiting
    # A 10 % share of a 4-host group still lets one host be healed.
    tiny = BlastRadius(max_concurrent=100, max_group_percent=10, groups=GROUPS)
    assert tiny.admit(["web1", "web2"], in_flight=())[0] == ["web1"]


@given(
    candidates=st.lists(st.sampled_from(sorted(GROUPS)), unique=True),
    in_flight=st.sets(st.sampled_from(sorted(GROUPS))),
    limit=st.integers(1, 8),
    percent=st.floats(1, 100),
)
def test_never_more_than_the_limits(
    candidates: list[str], in_flight: set[str], limit: int, percent: float
) -> None:
    candidates = [c for c in candidates if c not in in_flight]
    radius = BlastRadius(max_concurrent=limit, max_group_percent=percent, groups=GROUPS)
    admitted, waiting = radius.admit(candidates, in_flight)
    assert set(admitted) | set(waiting) == set(candidates)
    assert not set(admitted) & set(waiting)
    running = in_flight | set(admitted)
    assert len(admitted) == 0 or len(running) <= limit
    for group in ("web", "db"):
        members = [h for h, gs in GROUPS.items() if group in gs]
        busy = [h for h in running if h in members and h in admitted]
        before = [h for h in in_flight if h in members]
        assert not busy or len(busy) + len(before) <= radius.group_limit(len(members))
