"""A hand run's ``--limit``: host names, inventory groups and ranges (``web[1:3]``), resolved
to an explicit list of inventory hosts before anything runs.

Only these three forms are read, and only here: Ansible's other pattern syntax (``web*``,
``!web1``, ``web:&db``, ``~regex``) is refused, so ``--limit`` reaching Ansible is always a
plain list of names that a person saw and confirmed.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from engine.errors import RefusedError
from engine.inventory import HOST_NAME, Inventory

MAX_EXPANSION = 10_000  # hosts one range may name: a typo must not allocate millions
_RANGE = re.compile(
    r"(?P<head>[A-Za-z0-9._-]*)\[(?P<lo>[0-9a-z]+):(?P<hi>[0-9a-z]+)\](?P<tail>[A-Za-z0-9._-]*)"
)


def resolve_limit(text: str, inventory: Inventory) -> list[str]:
    """The inventory hosts ``text`` names, in inventory order; RefusedError naming any part
    that is not a host, a group or a range of hosts."""
    parts = [part.strip() for part in text.split(",")]
    if not any(parts):
        raise RefusedError("--limit names no host")
    chosen: set[str] = set()
    for part in parts:
        if not part:
            continue
        chosen.update(_resolve_part(part, inventory))
    return [name for name in sorted(inventory.hosts) if name in chosen]


def _resolve_part(part: str, inventory: Inventory) -> Iterable[str]:
    if part in inventory.hosts:
        return [part]
    members = [h.name for h in inventory.hosts.values() if part in h.groups]
    if members:
        return members
    if "[" in part:
        names = list(_expand(part))
        found = [name for name in names if name in inventory.hosts]
        if not found:
            raise RefusedError(f"--limit {part!r}: the range names no inventory host")
        return found
    if HOST_NAME.fullmatch(part):
        raise RefusedError(
            f"--limit {part!r}: not in the inventory (no host or group of that name)"
        )
    raise RefusedError(
        f"--limit {part!r}: only host names, group names and ranges like web[1:3] are accepted"
    )


def _expand(part: str) -> Iterable[str]:
    match = _RANGE.fullmatch(part)
    if match is None:
        raise RefusedError(f"--limit {part!r}: a range is written like web[1:3] or web[01:10]")
    lo, hi = match["lo"], match["hi"]
    head, tail = match["head"], match["tail"]
    if lo.isdigit() and hi.isdigit():
        first, last = int(lo), int(hi)
        width = len(lo) if lo.startswith("0") and len(lo) > 1 else 0
        values = range(first, last + 1)
        texts = (f"{value:0{width}d}" for value in values)
    elif len(lo) == 1 and len(hi) == 1 and lo.isalpha() and hi.isalpha():
        first, last = ord(lo), ord(hi)
        values = range(first, last + 1)
        texts = (chr(value) for value in values)
    else:
        raise RefusedError(f"--limit {part!r}: range bounds must be two numbers or two letters")
    if last < first:
        raise RefusedError(f"--limit {part!r}: the range ends before it starts")
    if len(values) > MAX_EXPANSION:
        raise RefusedError(f"--limit {part!r}: more than {MAX_EXPANSION} names in one range")
    return [f"{head}{text}{tail}" for text in texts]
