"""The one gate every run passes, by the engine or by hand: whitelist, inventory, vars.

Anything else is refused with a reason (``RefusedError``) and nothing runs.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.errors import RefusedError
from engine.inventory import Inventory
from engine.policy.schema import Policy
from engine.types import RunRequest


def parse_extra_vars(pairs: Sequence[str]) -> dict[str, str]:
    """Turn ["key=value", ...] into a dict; refuse malformed or repeated keys."""
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise RefusedError(f"extra var {pair!r} is not key=value")
        if key in found:
            raise RefusedError(f"extra var {key!r} given twice")
        found[key] = value
    return found


def build_request(
    policy: Policy,
    inventory: Inventory,
    playbook_dir: Path,
    *,
    action: str,
    hosts: Sequence[str],
    extra_vars: Mapping[str, str] | None = None,
    check: bool = False,
) -> RunRequest:
    """Validate a run against the whitelist, the inventory and the allowed vars."""
    spec = policy.actions.get(action)
    if spec is None:
        allowed = ", ".join(sorted(policy.actions))
        raise RefusedError(f"{action!r} is not a whitelisted action (allowed: {allowed})")
    if not hosts:
        raise RefusedError("no host given")
    unknown = inventory.unknown(hosts)
    if unknown:
        raise RefusedError(f"not in the inventory {inventory.path}: {', '.join(unknown)}")
    extra_vars = dict(extra_vars or {})
    for name, value in extra_vars.items():
        var = spec.vars.get(name)
        if var is None:
            allowed = ", ".join(sorted(spec.vars)) or "none"
            raise RefusedError(
                f"extra var {name!r} is not allowed for {action} (allowed: {allowed})"
            )
        if re.fullmatch(var.pattern, value) is None:
            raise RefusedError(f"extra var {name!r}: value does not match {var.pattern!r}")
    playbook = (playbook_dir / spec.playbook).resolve()
    if not playbook.is_relative_to(playbook_dir.resolve()) or not playbook.is_file():
        raise RefusedError(f"playbook {spec.playbook} for {action} not found in {playbook_dir}")
    return RunRequest(
        action=action,
        playbook=str(playbook),
        hosts=tuple(dict.fromkeys(hosts)),
        extra_vars=extra_vars,
        secret_vars=frozenset(n for n, v in spec.vars.items() if v.secret),
        check=check,
        timeout=int(spec.timeout),
        env=tuple(spec.env),
    )
