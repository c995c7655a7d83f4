"""CLI commands that run things: the engine, playbooks by hand, policy checks, chaos."""

from __future__ import annotations

import argparse
import getpass
import logging
import os
import signal
import sys
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType

from autosre.commands.common import say, setup_logging
from engine import __version__
from engine.errors import UsageError
from engine.execute.host_patterns import resolve_limit
from engine.policy.load import fix_policy_file, load_policy, policy_layout
from engine.policy.template_check import template_warnings
from engine.policy.trust import check_groups, inventory_groups
from engine.policy.whitelist import parse_extra_vars
from engine.record.run_reason import check_reason, check_ticket
from engine.redact import redact_url
from engine.settings import Settings
from engine.signals import signal_kind


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the engine loop (or one tick with --once)."""
    from autosre.wiring import build_engine, load_components  # noqa: PLC0415
    from engine.malloc_arenas import limit_arenas  # noqa: PLC0415
    from engine.policy_reload import PolicyReloader  # noqa: PLC0415
    from engine.prune import PRUNE_EVERY, scheduled_prune  # noqa: PLC0415
    from engine.scheduler import run_until  # noqa: PLC0415 - keeps `autosre --help` fast

    setup_logging(settings)
    limit_arenas()  # before the engine's threads start
    components = load_components(settings)
    setup_logging(settings, components.redactor)  # now with the inventory's secrets too
    groups = inventory_groups(components.inventory.hosts)
    check_groups(components.policy.trust, groups, source=str(settings.policy))
    engine = build_engine(components)
    local = settings.local_host or components.inventory.local_host()
    source = (
        redact_url(settings.prometheus_url)
        if settings.prometheus_url
        else f"this machine (psutil) as host {local}"
    )
    policy = components.policy
    logging.info(
        "AutoSRE %s: %d hosts from %s, policy %s, metrics from %s, store %s, tick every %gs",
        __version__,
        len(components.inventory.hosts),
        settings.inventory,
        settings.policy,
        source,
        components.sessions.kw["bind"].url.render_as_string(hide_password=True),
        settings.interval,
    )
    if args.once:
        try:
            engine.tick()
            longest = max(a.timeout for a in policy.actions.values())
            engine.wait_idle(longest + 30)
        finally:
            engine.shutdown(cancel_runs=True)
            components.close()
        return 0
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logging.info(
            "received %s: stopping; no new work starts, a run in flight has %gs to finish",
            signal.Signals(signum).name,
            settings.shutdown_grace,
        )
        stop.set()

    reloader = PolicyReloader(
        engine,
        sessions=components.sessions,
        path=settings.policy,
        playbook_dir=settings.playbook_dir,
        replica=settings.replica_id,
        clock=time.time,
    )

    def on_hangup(_signum: int, _frame: FrameType | None) -> None:
        reloader.request()  # only a flag: the reload happens before the next tick

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_hangup)
    try:
        run_until(
            engine,
            interval=settings.interval,
            stop=stop,
            housekeeping=lambda: scheduled_prune(components),
            housekeeping_every=PRUNE_EVERY,
            reload=reloader.check,
        )
    finally:
        engine.shutdown(cancel_runs=True, grace=settings.shutdown_grace)
        components.close()
        logging.info("stopped")
    return 0


def cmd_playbook_list(_args: argparse.Namespace, settings: Settings) -> int:
    """List the whitelisted actions and their playbooks."""
    policy = load_policy(settings.policy, playbook_dir=settings.playbook_dir)
    levels = policy.trust.table(policy.actions)
    for name, action in policy.actions.items():
        level, overrides = levels[name]
        groups = "".join(f", {over} in {group}" for group, over in overrides.items())
        print(f"{name}  ({action.playbook}, timeout {action.timeout:g}s, trust {level}{groups})")
        print(f"    {action.description}")
        for var, spec in action.vars.items():
            secret = ", secret" if spec.secret else ""
            print(f"    -e {var}=...  must match {spec.pattern}{secret}  {spec.description}")
    return 0


def cmd_playbook_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one whitelisted playbook by hand, under the engine's guardrails."""
    from autosre.wiring import load_components  # noqa: PLC0415
    from engine.execute.by_hand import run_by_hand  # noqa: PLC0415

    extra = parse_extra_vars(args.extra_vars or [])
    reason = check_reason(args.reason, required=False)  # refused (exit 2) before anything loads
    ticket = check_ticket(args.ticket)
    components = load_components(settings)
    try:
        hosts = resolve_limit(args.limit, components.inventory)
        typed = [part.strip() for part in args.limit.split(",") if part.strip()]
        expanded = typed != hosts  # a group or a range: show what it means before acting
        if expanded:
            _confirm_hosts(args.limit, hosts, args.yes)
    except BaseException:
        components.close()
        raise
    user = os.environ.get("SUDO_USER") or getpass.getuser()

    def on_start(ident: str, run_dir: str) -> None:
        mode = " in check mode" if args.check else ""
        say(f"running {args.name}{mode} on {', '.join(hosts)} (run {ident})")
        known = {h: components.inventory.hosts[h] for h in hosts if h in components.inventory.hosts}
        for line in components.recorder.maintenance.notes(known, time.time()).values():
            say(f"  note: {line}; running by hand anyway (recorded)")
        say(f"  artifacts: {run_dir}", flush=True)

    try:
        result = run_by_hand(
            components,
            action=args.name,
            hosts=hosts,
            extra_vars=extra,
            check=args.check,
            requested_by=user,
            on_start=on_start,
            limit=args.limit if expanded else None,
            reason=reason,
            ticket=ticket,
        )
    finally:
        components.close()
    say(f"{result.status} (rc {result.rc}) in {result.ended_at - result.started_at:.1f}s")
    for host, stats in result.stats.items():
        say(
            f"  {host}: ok={stats.ok} changed={stats.changed} failed={stats.failures} "
            f"unreachable={stats.unreachable} skipped={stats.skipped}"
        )
    if result.error:
        say(f"  error: {components.redactor.text(result.error)}")
    return 0 if result.status == "successful" else 1


def _confirm_hosts(limit: str, hosts: list[str], yes: bool) -> None:
    """Show what --limit resolved to; go on only when the person confirms (or passed --yes)."""
    say(f"--limit {limit!r} resolves to {len(hosts)} host(s): {', '.join(hosts)}")
    if yes:
        return
    if not sys.stdin.isatty():
        raise UsageError("a group or range was given: confirm its hosts with --yes")
    if input("run on these hosts? [y/N] ").strip().lower() not in {"y", "yes"}:
        raise UsageError("not confirmed: nothing ran")


def cmd_policy_check(args: argparse.Namespace, settings: Settings) -> int:
    """Validate a policy file and say what it allows; --fix rewrites an old layout."""
    path = Path(args.file) if args.file else settings.policy
    policy = load_policy(path, playbook_dir=settings.playbook_dir)
    if args.fix and fix_policy_file(path):
        print(f"{path}: rewritten in the current layout (version {policy.version})")
    print(f"{path}: ok")
    if policy_layout(path) != policy.version:
        say(
            f"  warning: {path} uses the version 1 layout (detection, remediation.ladder); "
            "it still works: `autosre policy check --fix` rewrites it with a section per signal"
        )
    for kind, rule in policy.signals.items():
        unit = signal_kind(kind).unit
        print(
            f"  {kind}: above {rule.trigger:g}{unit} for {rule.sustain:g}s, clear below "
            f"{rule.clear:g}{unit}, step {rule.step:g}s, window {rule.window:g}s; ladder: "
            f"{' -> '.join(rule.ladder)} -> escalate"
        )
    print(f"  actions: {', '.join(policy.actions)}")
    levels = policy.trust.table(policy.actions)
    print(f"  trust: {', '.join(f'{name} {level}' for name, (level, _) in levels.items())}")
    for warning in template_warnings(policy):
        say(f"  warning: {warning}")
    return 0


def cmd_policy_reload(args: argparse.Namespace, settings: Settings) -> int:
    """Validate the policy file here, then ask the running engines (through the store) to
    reload it, and print their answers; exit 1 if none answers in time."""
    from autosre.wiring import load_components  # noqa: PLC0415
    from engine.policy_reload import check_policy, reload_answers, request_reload  # noqa: PLC0415
    from engine.read.replicas import read_replicas  # noqa: PLC0415

    components = load_components(settings)  # a bad file or inventory: exit 2, naming it
    try:
        check_policy(settings.policy, settings.playbook_dir, components.inventory.hosts)
        print(f"{settings.policy}: ok; asking the running engine(s) to reload it")
        sessions = components.sessions
        now = time.time()
        alive = sum(r.alive for r in read_replicas(sessions, now=datetime.now(UTC)))
        request = request_reload(sessions, now)
        deadline = time.monotonic() + args.wait
        answers: list[dict[str, object]] = []
        while time.monotonic() < deadline:
            answers = reload_answers(sessions, request)
            if answers and len(answers) >= max(1, alive):
                break
            time.sleep(0.2)
    finally:
        components.close()
    for answer in answers:
        print(f"  {answer.get('replica') or 'engine'}: {answer['message']}")
    if not answers:
        say(f"no engine answered within {args.wait:g}s: is `autosre run` running on this store?")
        return 1
    if len(answers) < alive:
        say(f"only {len(answers)} of the {alive} live engine replicas answered in time")
    return 1 if any(a["kind"] != "policy_reloaded" for a in answers) else 0


def cmd_chaos_cpu(args: argparse.Namespace, _settings: Settings) -> int:
    """Burn CPU on this host until nginx restarts (or for --seconds)."""
    from autosre.chaos import burn_cpu  # noqa: PLC0415

    kind = (
        "stubborn burn (survives nginx restarts)"
        if args.stubborn
        else "burn (ends when nginx restarts)"
    )
    print(f"chaos: CPU {kind} for at most {args.seconds:g}s", flush=True)
    outcome = burn_cpu(
        seconds=args.seconds,
        stubborn=args.stubborn,
        on_progress=lambda line: print(f"chaos: {line}", flush=True),
    )
    print(f"chaos: ended after {outcome.duration:.1f}s: {outcome.reason}", flush=True)
    return 0
