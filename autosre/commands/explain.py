"""``autosre incidents explain ID``: the incident's recorded decisions replayed through
today's policy and planner (nothing is run, nothing is written), next to the ones then."""

from __future__ import annotations

import argparse

from autosre.commands.common import Parser, record_id, say
from autosre.commands.eval import host_facts
from engine.components import Components
from engine.settings import Settings


def add_command(isub: argparse._SubParsersAction[Parser]) -> None:
    """``incidents explain ID``."""
    explain = isub.add_parser(
        "explain", help="what today's policy and planner would decide, next to what was decided"
    )
    explain.add_argument("id", type=record_id, help="the incident's id")
    explain.set_defaults(func=cmd_incidents_explain)


def cmd_incidents_explain(args: argparse.Namespace, settings: Settings) -> int:
    """Print each recorded decision of an incident beside today's, with today's reason."""
    from autosre.wiring import build_planner  # noqa: PLC0415 - heavy SDKs, load on use
    from engine.decision_eval.case_file import then_line  # noqa: PLC0415
    from engine.decision_eval.run import close_planner  # noqa: PLC0415
    from engine.explain import replay  # noqa: PLC0415

    components = Components(settings)
    try:
        labels, groups, redactor = host_facts(components, args.id)
        policy = components.policy
        planner = build_planner(settings, policy, redactor=redactor)
        try:
            replays = replay(
                components.sessions,
                args.id,
                policy=policy,
                planner=planner,
                labels=labels,
                groups=groups,
            )
        finally:
            close_planner(planner)
    finally:
        components.close()
    first = replays[0].recorded.scenario
    say(
        f"incident {args.id} on {first['host']}: {first['kind']}; replayed with today's policy "
        f"({settings.policy}) and planner ({settings.planner}); nothing was run"
    )
    for r in replays:
        d = r.recorded.decision
        p, v = r.proposal, r.verdict
        fallback = f" (fallback: {p.fallback})" if p.fallback else ""
        verdict = f"{v.kind} [{v.rule}] {v.reason}"
        say(f"decision #{d.id} at {d.created_at:%Y-%m-%dT%H:%M:%SZ}:")
        say(f"  then: {redactor.text(then_line(r.recorded))}")
        why = redactor.text(p.rationale)
        say(f"  now:  {p.planner} proposes {p.action} ({p.confidence:.2f}){fallback}: {why}")
        say(f"        the policy: {redactor.text(verdict)}")
        change = "same decision" if r.then == r.now else f"CHANGED: {r.then} then, {r.now} now"
        say(f"  {change}")
        if r.missing:
            say(f"  not in the record (replayed without): {', '.join(r.missing)}")
    return 0
