"""A case's policy: a shipped one (``default``, ``lab``) or a file beside the case, narrowed
by the case's excerpt (a whitelist, remediation and signal settings), then validated as any
policy file is."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from engine.decision_eval.case import CaseError, PolicyRef
from engine.errors import PolicyError
from engine.policy.layout import is_old_layout, upgrade_layout
from engine.policy.load import parse_policy, read_policy_data
from engine.policy.schema import Policy
from engine.settings import PROJECT_ROOT

SHIPPED = ("default", "lab")


def policy_file(base: str, case_file: Path) -> Path:
    """Where a case's base policy is: a shipped name, else a path relative to the case."""
    if base in SHIPPED:
        for root in (PROJECT_ROOT, Path.cwd()):
            candidate = root / "policies" / f"{base}.yaml"
            if candidate.is_file():
                return candidate
        raise CaseError(f"{case_file}: policy.base: the shipped policy {base!r} is not installed")
    path = Path(base)
    return path if path.is_absolute() else case_file.parent / path


def _narrow(data: dict[str, Any], ref: PolicyRef) -> dict[str, Any]:
    """The policy's data with the case's excerpt applied."""
    data = copy.deepcopy(upgrade_layout(data) if is_old_layout(data) else data)
    if ref.whitelist is not None:
        actions = data.get("actions") or {}
        data["actions"] = {k: v for k, v in actions.items() if k in ref.whitelist}
        for section in (data.get("signals") or {}).values():
            if isinstance(section, dict) and isinstance(section.get("ladder"), list):
                section["ladder"] = [r for r in section["ladder"] if r in ref.whitelist]
        # A kind left with no rung cannot be remediated: it is not watched in this excerpt.
        signals = data.get("signals") or {}
        data["signals"] = {
            k: v for k, v in signals.items() if not isinstance(v, dict) or v.get("ladder") != []
        }
        _drop_unlisted(data, set(ref.whitelist))
    if ref.remediation:
        data["remediation"] = {**(data.get("remediation") or {}), **ref.remediation}
    for kind, section in ref.signals.items():
        signals = data.setdefault("signals", {})
        signals[kind] = {**(signals.get(kind) or {}), **section}
    return data


def _drop_unlisted(data: dict[str, Any], kept: set[str]) -> None:
    """Trust levels and rate limits of actions the excerpt's whitelist left out."""
    trust = data.get("trust")
    if isinstance(trust, dict):
        if isinstance(trust.get("actions"), dict):
            trust["actions"] = {k: v for k, v in trust["actions"].items() if k in kept}
        for group, levels in (trust.get("groups") or {}).items():
            if isinstance(levels, dict):
                trust["groups"][group] = {k: v for k, v in levels.items() if k in kept}
    limits = data.get("rate_limits")
    if isinstance(limits, list):
        data["rate_limits"] = [
            limit
            for limit in limits
            if not isinstance(limit, dict) or limit.get("action") in (None, *kept)
        ]


class PolicyCache:
    """Loads each distinct (file, excerpt) once: a corpus shares a handful of policies."""

    def __init__(self) -> None:
        self._loaded: dict[tuple[str, str], Policy] = {}

    def get(self, ref: PolicyRef, case_file: Path) -> Policy:
        """The validated policy of a case; CaseError naming the case file when it is bad."""
        path = policy_file(ref.base, case_file)
        key = (str(path.resolve()), json.dumps(ref.model_dump(), sort_keys=True))
        found = self._loaded.get(key)
        if found is None:
            try:
                data = read_policy_data(path)
                if not isinstance(data, dict):
                    raise PolicyError(str(path), "", "the file must hold a mapping at the top")
                found = parse_policy(_narrow(data, ref), source=f"{path} (as narrowed by the case)")
            except PolicyError as exc:
                raise CaseError(f"{case_file}: policy: {exc}") from None
            self._loaded[key] = found
        return found
