"""Load and validate a policy YAML file into a typed, frozen ``Policy``.

The file is untrusted input: every field is checked, unknown fields are refused,
and errors name the file, the field and the reason (``PolicyError``). A version 1
file is read in the current layout (engine/policy/layout.py).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from engine.errors import PolicyError
from engine.policy.layout import is_old_layout, old_field, upgrade_layout
from engine.policy.schema import Policy


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def parse_policy(data: object, *, source: str = "<policy>") -> Policy:
    """Validate already-loaded YAML data as a policy; raise PolicyError on the first problem."""
    if not isinstance(data, dict):
        raise PolicyError(source, "", "the file must hold a mapping (key: value) at the top")
    old = is_old_layout(data)
    if old:
        data = upgrade_layout(data)
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = str(first["msg"]).removeprefix("Value error, ")
        field = _field_path(tuple(first["loc"]))
        raise PolicyError(source, old_field(field) if old else field, reason) from None
    problem = policy.cross_check()
    if problem is not None:
        field, reason = problem
        raise PolicyError(source, old_field(field) if old else field, reason)
    return policy


def read_policy_data(path: Path) -> Any:
    """The file's YAML, or PolicyError saying why it cannot be read."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(source, "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PolicyError(source, "", "not UTF-8 text") from None
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PolicyError(source, "", f"not valid YAML{where}") from None


def load_policy(path: Path, *, playbook_dir: Path | None = None) -> Policy:
    """Read, parse and validate a policy file; check its playbooks exist in playbook_dir."""
    source = str(path)
    policy = parse_policy(read_policy_data(path), source=source)
    if playbook_dir is not None:
        for name, action in policy.actions.items():
            if not (playbook_dir / action.playbook).is_file():
                raise PolicyError(
                    source,
                    f"actions.{name}.playbook",
                    f"{action.playbook} not found in {playbook_dir}",
                )
    return policy


def policy_layout(path: Path) -> int:
    """The layout version the file is written in (1 or the current one)."""
    data = read_policy_data(path)
    return (
        1
        if isinstance(data, dict) and is_old_layout(data)
        else Policy.model_fields["version"].default
    )


def fix_policy_file(path: Path) -> bool:
    """Rewrite a version 1 file in the current layout (the old one kept as FILE.v1); True if done.

    The file is validated first, so a broken one is never rewritten.
    """
    data = read_policy_data(path)
    parse_policy(data, source=str(path))
    if not (isinstance(data, dict) and is_old_layout(data)):
        return False
    backup = path.with_name(path.name + ".v1")
    backup.write_bytes(path.read_bytes())
    text = yaml.safe_dump(upgrade_layout(data), sort_keys=False, allow_unicode=True)
    header = (
        f"# Rewritten by `autosre policy check --fix` from version 1 (kept in {backup.name}).\n"
    )
    temp = path.with_name(f".{path.name}.new")
    temp.write_text(header + text, encoding="utf-8")
    temp.replace(path)  # atomic: never a half-written policy
    return True
