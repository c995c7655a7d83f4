"""``autosre eval``: the decision corpus scored per planner (no action, no store), and
``autosre eval capture ID``: an incident's situation written as a case (docs/eval.md)."""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path

from sqlalchemy.orm import Session, sessionmaker

from autosre.commands.common import Parser, record_id, say
from engine.components import Components
from engine.errors import InventoryError, UsageError
from engine.plan.situation import Planner
from engine.policy.schema import Policy
from engine.redact import Redactor
from engine.settings import DEFAULT_MODELS, PLANNERS, PROJECT_ROOT, Settings

EXIT_UNSAFE = 1  # some planner gave an unsafe answer: CI gates on it


def add_commands(sub: argparse._SubParsersAction[Parser]) -> None:
    """``eval`` and ``eval capture``."""
    ev = sub.add_parser("eval", help="score planners on the decision corpus (acts on nothing)")
    ev.add_argument(
        "--cases",
        action="append",
        type=Path,
        default=[],
        metavar="PATH",
        help="a case file or directory to add (repeatable)",
    )
    ev.add_argument("--no-shipped", action="store_true", help="leave out the shipped corpus")
    ev.add_argument(
        "--planner",
        action="append",
        choices=PLANNERS,
        help="rules, gemini or openai (repeatable; default: rules and AUTOSRE_PLANNER)",
    )
    ev.add_argument("--json", type=Path, metavar="FILE", help="also write the scores as JSON")
    ev.set_defaults(func=cmd_eval)
    esub = ev.add_subparsers(dest="subcommand", parser_class=Parser)
    cap = esub.add_parser("capture", help="write an incident's recorded situation as a case")
    cap.add_argument("id", type=record_id, help="the incident's id")
    cap.add_argument("--out", type=Path, metavar="FILE", help="a new file (default: stdout)")
    cap.add_argument(
        "--decision", type=record_id, metavar="ID", help="this decision (default: the first)"
    )
    cap.set_defaults(func=cmd_eval_capture)


def _planners(args: argparse.Namespace, settings: Settings) -> list[str]:
    chosen = args.planner or ["rules", settings.planner]
    return list(dict.fromkeys(chosen))


def planner_factory(
    name: str, settings: Settings
) -> tuple[Callable[[Policy], Planner], str | None]:
    """Builds the planner ``name`` for a policy, exactly as the engine's composition root."""
    from autosre.wiring import build_planner  # noqa: PLC0415 - heavy SDKs, load on use

    if name == "gemini" and not settings.gemini_api_key:
        raise UsageError("--planner gemini needs GEMINI_API_KEY")
    if name == "openai" and not (settings.openai_api_key or settings.llm_base_url):
        raise UsageError("--planner openai needs OPENAI_API_KEY or AUTOSRE_LLM_BASE_URL")
    model = settings.llm_model
    if name != settings.planner and model == DEFAULT_MODELS.get(settings.planner):
        model = None  # the configured planner's default model, not one named for this one
    chosen = replace(settings, planner=name, llm_model=model or DEFAULT_MODELS.get(name))
    redactor = Redactor(settings.secrets)

    def make(policy: Policy) -> Planner:
        return build_planner(chosen, policy, redactor=redactor)

    return make, chosen.llm_model


def cmd_eval(args: argparse.Namespace, settings: Settings) -> int:
    """Score each planner on the corpus; exit 1 when any answer was unsafe."""
    from engine.decision_eval.case import load_cases, shipped_corpus  # noqa: PLC0415
    from engine.decision_eval.run import run_cases  # noqa: PLC0415
    from engine.decision_eval.score import Score, table  # noqa: PLC0415

    places = ([] if args.no_shipped else [shipped_corpus()]) + list(args.cases)
    if not places:
        raise UsageError("no cases: --no-shipped needs --cases PATH")
    cases = load_cases(*places)
    scores = []
    for name in _planners(args, settings):
        make, model = planner_factory(name, settings)
        outcomes = run_cases(cases, make)
        scores.append(Score(name, None if name == "rules" else model, tuple(outcomes)))
    for line in table(scores):
        say(line)
    if args.json is not None:
        _write_json(args.json, {"scores": [s.to_json() for s in scores]})
        say(f"scores written to {args.json}")
    return EXIT_UNSAFE if any(s.unsafe_count for s in scores) else 0


def _write_json(path: Path, data: object) -> None:
    temp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        temp.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
        temp.replace(path)  # never a half-written export
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None


def policy_base(settings: Settings) -> str:
    """The engine's policy as a case names it: a shipped name, else its absolute path."""
    path = settings.policy.resolve()
    for name in ("default", "lab"):
        if path == (PROJECT_ROOT / "policies" / f"{name}.yaml").resolve():
            return name
    return str(path)


def cmd_eval_capture(args: argparse.Namespace, settings: Settings) -> int:
    """Write one recorded decision point of an incident (the first unless --decision) as a
    case, redacted, its expected decision TODO."""
    from engine.decision_eval.capture import recorded_decisions  # noqa: PLC0415
    from engine.decision_eval.case_file import case_yaml  # noqa: PLC0415

    components = Components(settings)
    try:
        labels, groups, redactor = host_facts(components, args.id)
        found = recorded_decisions(
            components.sessions,
            args.id,
            policy_base=policy_base(settings),
            labels=labels,
            groups=groups,
        )
    finally:
        components.close()
    chosen = [r for r in found if args.decision in (None, r.decision.id)]
    if not chosen:
        raise UsageError(f"incident {args.id} has no decision {args.decision}")
    text = case_yaml(chosen[0], redactor)
    if args.out is None:
        print(text, end="")
        return 0
    try:
        with args.out.open("x", encoding="utf-8") as out:  # never over another file
            out.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write {args.out}: {exc.strerror or exc}") from None
    say(f"case written to {args.out}: set expect.decision (it says TODO) before using it")
    return 0


def host_facts(
    components: Components, incident_id: int
) -> tuple[Mapping[str, str] | None, Collection[str] | None, Redactor]:
    """The incident's host's labels and groups as today's inventory has them (None when it
    cannot be read or no longer lists the host), and the redactor for what is shown."""
    host = incident_host(components.sessions, incident_id)
    try:
        known = components.inventory.hosts.get(host)
        redactor = components.redactor
    except InventoryError:  # the record alone still makes a case
        return None, None, Redactor(components.settings.secrets)
    if known is None:
        return None, None, redactor
    return dict(known.labels), known.groups, redactor


def incident_host(sessions: sessionmaker[Session], incident_id: int) -> str:
    """The incident's host; UsageError when there is no such incident."""
    from engine.store.models import Incident  # noqa: PLC0415

    with sessions() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            raise UsageError(f"no incident with id {incident_id}")
        return str(incident.host)
