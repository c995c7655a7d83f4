"""Extra vars as Ansible reads them: a private YAML file with every value tagged ``!unsafe``,
so whatever a person typed is data, never a template.
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Mapping
from pathlib import Path

import yaml


class _Unsafe(str):
    """An extra var's value: data that Ansible must never template."""

    __slots__ = ()


class _VarsDumper(yaml.SafeDumper):
    """Writes every ``_Unsafe`` value tagged ``!unsafe``, double-quoted (any character)."""


def _represent_unsafe(dumper: yaml.SafeDumper, value: _Unsafe) -> yaml.ScalarNode:
    return dumper.represent_scalar("!unsafe", str(value), style='"')


_VarsDumper.add_representer(_Unsafe, _represent_unsafe)


def vars_yaml(extra_vars: Mapping[str, str]) -> str:
    """Extra vars as the YAML Ansible reads with ``-e @file``: every value ``!unsafe``."""
    data = {name: _Unsafe(value) for name, value in extra_vars.items()}
    # ASCII only (the rest escaped) and no line folding: the value is read back exactly.
    return yaml.dump(data, Dumper=_VarsDumper, allow_unicode=False, width=2**31)


def write_vars_file(path: Path, extra_vars: Mapping[str, str]) -> None:
    """Write the vars file, mode 0600, refusing to overwrite anything."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(vars_yaml(extra_vars))


def cmdline(vars_file: Path, *, check: bool) -> str:
    """The ansible-playbook arguments that read the vars file (and turn on check mode)."""
    return shlex.join(["-e", f"@{vars_file}", *(["--check"] if check else [])])
