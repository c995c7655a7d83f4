"""Warnings about extra var patterns that admit template text ({{, {% or lookup()).

Values reach Ansible marked unsafe, so they are never templated; a pattern that admits
Jinja still deserves a warning, because a playbook that templates the value again would
run it. Whether a regular expression admits such text is probed with generated strings.
"""

from __future__ import annotations

import re
import string
from functools import cache

from engine.policy.schema import Policy

# Text that Jinja would run if Ansible templated a value.
TEMPLATE_TOKENS = ("{{", "{%", "lookup(")
_PADDING = string.ascii_letters + string.digits + string.punctuation + " "
_PAD_LENGTHS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256)


def template_warnings(policy: Policy) -> list[str]:
    """One warning per var whose pattern admits Jinja syntax ({{, {% or lookup()."""
    warnings = []
    for action_name, action in policy.actions.items():
        for var_name, var in action.vars.items():
            example = _admitted_template(re.compile(var.pattern))
            if example is not None:
                warnings.append(
                    f"actions.{action_name}.vars.{var_name}: pattern {var.pattern!r} admits "
                    f"template text such as {example!r}; the value reaches Ansible marked "
                    "unsafe (never templated), but a playbook that templates it again would "
                    "run it: prefer a tighter pattern"
                )
    return warnings


def _admitted_template(pattern: re.Pattern[str]) -> str | None:
    for candidate in _template_candidates():
        if pattern.fullmatch(candidate):
            return candidate
    return None


@cache
def _template_candidates() -> tuple[str, ...]:
    """Strings holding a template token, padded on either side to lengths a pattern may want."""
    found = ["{{ 7*7 }}", "{% if x %}y{% endif %}", "{{ lookup('pipe','id') }}"]
    for token in TEMPLATE_TOKENS:
        for pad in _PADDING:
            for length in _PAD_LENGTHS:
                padding = pad * length
                found += [token + padding, padding + token]
                half = padding[: length // 2]
                found.append(half + token + padding[len(half) :])
    return tuple(dict.fromkeys(found))
