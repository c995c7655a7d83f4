"""Policy file layouts: version 1 (``detection.high_cpu`` + ``remediation.ladder``) is read
as version 2 (``signals.<kind>`` with its own ladder), and ``autosre policy check --fix``
rewrites a version 1 file in the current layout.
"""

from __future__ import annotations

import copy
from typing import Any

from engine.policy.schema import LAYOUT_VERSION

OLD_LAYOUT = 1


def is_old_layout(data: dict[str, Any]) -> bool:
    """True for a version 1 file: no ``signals``, and a version of 1 or none."""
    return "signals" not in data and data.get("version", OLD_LAYOUT) == OLD_LAYOUT


def upgrade_layout(data: dict[str, Any]) -> dict[str, Any]:
    """The same policy in the current layout (a new mapping; ``data`` is left as it is).

    Anything the old layout did not know stays where it is, so the schema still names it.
    """
    new = copy.deepcopy(data)
    detection = new.pop("detection", None)
    remediation = new.get("remediation")
    ladder = remediation.pop("ladder", None) if isinstance(remediation, dict) else None
    signals: dict[str, Any] = {}
    if isinstance(detection, dict):
        for kind, section in detection.items():
            signals[kind] = dict(section) if isinstance(section, dict) else section
    elif detection is not None:
        signals["detection"] = detection  # not a mapping: the schema says why
    if not signals:
        signals["high_cpu"] = {}  # version 1 watched CPU by default
    if ladder is not None:
        for section in signals.values():
            if isinstance(section, dict):
                section["ladder"] = ladder
    new["version"] = LAYOUT_VERSION
    new["signals"] = signals
    order = ["version", "signals", "actions", "remediation"]
    return {key: new[key] for key in [*order, *new] if key in new}


def old_field(field: str) -> str:
    """A field's name as a version 1 file spells it (for errors about such a file)."""
    parts = field.split(".")
    if parts[:1] != ["signals"] or len(parts) < 2:
        return field
    if parts[2:3] == ["ladder"]:
        return ".".join(["remediation", "ladder", *parts[3:]])
    return ".".join(["detection", *parts[1:]])
