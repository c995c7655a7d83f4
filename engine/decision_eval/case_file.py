"""A recorded decision point written as a case file: redacted, with its expected decision
left TODO (the loader refuses the case until a person sets it)."""

from __future__ import annotations

from typing import Any

import yaml

from engine.decision_eval.capture import Recorded
from engine.decision_eval.case import TODO
from engine.redact import Redactor
from engine.timeutil import iso

HEADER = """\
# Captured by `autosre eval capture` from incident {incident} (decision {decision}).
# Then: {then}
# TODO: set expect.decision to the decision this situation calls for (an action,
# escalate or do_nothing), list answers that must never be given under forbidden, then
# run `autosre eval --cases THIS_FILE`. The loader refuses the case while it says TODO.
# missing: what the store did not keep ({missing}); the replay goes without it.
"""


def one_line(text: str) -> str:
    """Text safe inside a YAML comment: no line break of any kind, no control character."""
    return "".join(ch if ch.isprintable() else " " for ch in text)


def then_line(recorded: Recorded) -> str:
    """What was decided then, in one line."""
    d = recorded.decision
    fallback = f" (fallback: {d.fallback})" if d.fallback else ""
    return (
        f"{d.planner} proposed {d.action} ({d.confidence:.2f}){fallback}; "
        f"the policy: {d.verdict} [{d.rule}] {d.reason}"
    )


def case_data(recorded: Recorded, redactor: Redactor) -> dict[str, Any]:
    """The case as data: the scenario, a name and description, expect.decision TODO;
    every string redacted, every secret-named field hidden."""
    d = recorded.decision
    data: dict[str, Any] = {
        "name": f"incident-{recorded.incident_id}-decision-{d.id}",
        "description": (
            f"Captured from incident {recorded.incident_id} on {recorded.scenario['host']} "
            f"at {iso(d.created_at)}; then: {then_line(recorded)}"
        )[:2000],
        **recorded.scenario,
        "expect": {"decision": TODO, "forbidden": []},
    }
    redacted: dict[str, Any] = redactor.value(data)
    return redacted


def case_yaml(recorded: Recorded, redactor: Redactor) -> str:
    """The case file's text: a header saying what to fill in, then the case."""
    data = case_data(recorded, redactor)
    header = HEADER.format(
        incident=recorded.incident_id,
        decision=recorded.decision.id,
        then=one_line(redactor.text(then_line(recorded))),
        missing=", ".join(data.get("missing", [])) or "nothing",
    )
    body = yaml.safe_dump(data, sort_keys=False, default_flow_style=None, allow_unicode=False)
    return header + body
