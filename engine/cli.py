"""The ``autosre`` command line. Bad input exits with status 2 and a message, never a traceback."""

from __future__ import annotations

import argparse
import getpass
import json
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn

from engine import __version__
from engine.guard import RefusedError, parse_extra_vars
from engine.inventory import InventoryError
from engine.locks import HostBusyError
from engine.policy_file import PolicyError, load_policy
from engine.queries import STATUSES, incident_detail, list_approvals, list_incidents
from engine.record import ApprovalError
from engine.settings import Settings, SettingsError, load_settings
from engine.store import StoreError
from engine.users import ROLES, UserError, create_token, create_user, disable_user, list_users

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

EXIT_USAGE = 2
# Errors that mean "the input is wrong": reported in one line, exit status 2.
INPUT_ERRORS = (
    PolicyError,
    InventoryError,
    SettingsError,
    RefusedError,
    HostBusyError,
    StoreError,
    ApprovalError,
    UserError,
)


class UsageError(Exception):
    """A command line that cannot be carried out."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"autosre: error: {message}\n")


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more: {text!r}")
    return value


def _record_id(text: str) -> int:
    value = _positive_int(text)
    if value > 2**31 - 1:  # the largest id an INTEGER column holds on PostgreSQL
        raise argparse.ArgumentTypeError(f"no such id: {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value <= 86400:
        raise argparse.ArgumentTypeError(f"must be between 0 and 86400 seconds: {text!r}")
    return value


def _setup_logging(settings: Settings) -> None:
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)-7s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
        stream=sys.stderr,
    )
    # Migration chatter and per-task runner logs drown the one line per state change.
    for noisy in ("alembic", "ansible_runner"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# -- commands -------------------------------------------------------------------


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run the engine loop (or one tick with --once)."""
    from engine.scheduler import run_until  # noqa: PLC0415 - keeps `autosre --help` fast
    from engine.wiring import build_engine, load_components  # noqa: PLC0415

    _setup_logging(settings)
    components = load_components(settings)
    engine = build_engine(components)
    local = settings.local_host or components.inventory.local_host()
    source = settings.prometheus_url or f"this machine (psutil) as host {local}"
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
        engine.tick()
        longest = max(a.timeout for a in policy.actions.values())
        engine.wait_idle(longest + 30)
        engine.shutdown(cancel_runs=True)
        return 0
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        logging.info("received %s: stopping after the current tick", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    try:
        run_until(engine, interval=settings.interval, stop=stop)
    finally:
        engine.shutdown(cancel_runs=True)
        logging.info("stopped")
    return 0


def cmd_incidents_list(args: argparse.Namespace, settings: Settings) -> int:
    """List incidents, newest first."""
    from engine.store import open_store  # noqa: PLC0415

    rows = list_incidents(
        open_store(settings.database_url), status=args.status, host=args.host, limit=args.limit
    )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no incidents")
        return 0
    print(f"{'ID':>5}  {'HOST':<20} {'KIND':<9} {'STATUS':<12} {'ACTION':<16} {'CPU':>13}  OPENED")
    for row in rows:
        cpu = _cpu(row["cpu_before"]) + " > " + _cpu(row["cpu_after"])
        print(
            f"{row['id']:>5}  {row['host']:<20.20} {row['kind']:<9} {row['status']:<12} "
            f"{row['action'] or '-':<16} {cpu:>13}  {row['opened_at']}"
        )
    return 0


def _cpu(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def cmd_incidents_show(args: argparse.Namespace, settings: Settings) -> int:
    """Show one incident: timeline, decisions with reasons, runs."""
    from engine.store import open_store  # noqa: PLC0415

    detail = incident_detail(open_store(settings.database_url), args.id)
    if detail is None:
        raise UsageError(f"no incident with id {args.id}")
    if args.json:
        print(json.dumps(detail, indent=2))
        return 0
    print(f"incident {detail['id']} on {detail['host']}: {detail['kind']}, {detail['status']}")
    print(
        f"  opened {detail['opened_at']}, closed {detail['closed_at'] or '-'}; cpu "
        f"{_cpu(detail['cpu_before'])} before, {_cpu(detail['cpu_after'])} after"
    )
    print("timeline:")
    for event in detail["timeline"]:
        print(f"  {event['at']}  {event['kind']:<14} {event['message']}")
    print("decisions:")
    for d in detail["decisions"]:
        print(
            f"  #{d['id']} {d['planner']} proposed {d['action']} ({d['confidence']:.2f}): "
            f"{d['rationale']}"
        )
        if d["model"]:
            print(f"      model {_call_summary(d)}")
        if d["call_error"]:
            print(f"      model reply not used: {d['call_error']}")
        if d["fallback"]:
            print(f"      fallback to rules: {d['fallback']}")
        print(
            f"      verdict {d['verdict']} [{d['rule']}]: {d['reason']}; "
            f"outcome {d['outcome'] or '-'}"
        )
    if detail["approvals"]:
        print("approvals:")
        for a in detail["approvals"]:
            print(f"  #{a['id']} {a['action']}: {_approval_state(a)}")
    print("runs:")
    for run in detail["runs"]:
        print(
            f"  {run['ident']}: {run['action']} on {', '.join(run['hosts'])} -> "
            f"{run['status']} (rc {run['rc']}); artifacts {run['artifact_dir']}"
        )
    return 0


def _call_summary(d: dict[str, Any]) -> str:
    """One line on a decision's model call: who, how long, how many tokens."""
    parts = [f"{d['provider']}/{d['model']}"]
    if d["latency_ms"] is not None:
        parts.append(f"{d['latency_ms']:.0f} ms")
    if d["attempts"] is not None:
        parts.append(f"{d['attempts']} attempt{'s' if d['attempts'] != 1 else ''}")
    if d["input_tokens"] is not None or d["output_tokens"] is not None:
        tokens_in = "?" if d["input_tokens"] is None else d["input_tokens"]
        tokens_out = "?" if d["output_tokens"] is None else d["output_tokens"]
        parts.append(f"tokens {tokens_in} in / {tokens_out} out")
    if d["cached"]:
        parts.append("cached")
    return ", ".join(parts)


def _approval_state(a: dict[str, Any]) -> str:
    """An approval's status in words: who decided when, or until when it waits."""
    if a["status"] == "pending":
        return f"pending until {a['expires_at']}"
    if a["decided_by"]:
        note = f" ({a['note']})" if a["note"] else ""
        return f"{a['status']} by {a['decided_by']} at {a['decided_at']}{note}"
    return f"{a['status']} at {a['decided_at'] or a['expires_at']}"


def cmd_approvals_list(args: argparse.Namespace, settings: Settings) -> int:
    """List approvals: pending ones (oldest first), or all of them (newest first)."""
    from engine.store import open_store  # noqa: PLC0415

    rows = list_approvals(
        open_store(settings.database_url), status=None if args.all else "pending", limit=args.limit
    )
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no approvals" if args.all else "no pending approvals")
        return 0
    print(f"{'ID':>5}  {'INCIDENT':>8}  {'HOST':<20} {'ACTION':<16} {'STATUS':<9} REQUESTED")
    for row in rows:
        print(
            f"{row['id']:>5}  {row['incident_id']:>8}  {row['host']:<20.20} "
            f"{row['action']:<16} {row['status']:<9} {row['requested_at']}"
        )
        print(f"{'':>7}{_approval_state(row)}")
        if row["rationale"]:
            print(f"{'':>7}why: {row['rationale']}")
    return 0


def _decide(args: argparse.Namespace, settings: Settings, *, approve: bool) -> int:
    from engine.audit import AuditLog  # noqa: PLC0415
    from engine.record import Recorder  # noqa: PLC0415
    from engine.store import open_store  # noqa: PLC0415

    recorder = Recorder(open_store(settings.database_url), AuditLog(settings.audit_log))
    user = os.environ.get("SUDO_USER") or getpass.getuser()
    approval = recorder.decide_approval(
        args.id, approve=approve, by=user, at=time.time(), note=args.note
    )
    print(
        f"approval {approval.id} {approval.status} by {user}: {approval.action} on "
        f"{approval.host} (incident {approval.incident_id})"
    )
    if approve:
        print("  the engine runs it on its next tick, if the policy still allows it")
    return 0


def cmd_approvals_approve(args: argparse.Namespace, settings: Settings) -> int:
    """Approve a pending action; the engine carries it out on its next tick."""
    return _decide(args, settings, approve=True)


def cmd_approvals_reject(args: argparse.Namespace, settings: Settings) -> int:
    """Reject a pending action; the engine will not run it."""
    return _decide(args, settings, approve=False)


def cmd_playbook_list(_args: argparse.Namespace, settings: Settings) -> int:
    """List the whitelisted actions and their playbooks."""
    policy = load_policy(settings.policy, playbook_dir=settings.playbook_dir)
    for name, action in policy.actions.items():
        print(f"{name}  ({action.playbook}, timeout {action.timeout:g}s)")
        print(f"    {action.description}")
        for var, spec in action.vars.items():
            secret = ", secret" if spec.secret else ""
            print(f"    -e {var}=...  must match {spec.pattern}{secret}  {spec.description}")
    return 0


def cmd_playbook_run(args: argparse.Namespace, settings: Settings) -> int:
    """Run one whitelisted playbook by hand, under the engine's guardrails."""
    from engine.manual import run_by_hand  # noqa: PLC0415
    from engine.wiring import load_components  # noqa: PLC0415

    hosts = [h.strip() for h in args.limit.split(",") if h.strip()]
    extra = parse_extra_vars(args.extra_vars or [])
    components = load_components(settings)
    user = os.environ.get("SUDO_USER") or getpass.getuser()

    def on_start(ident: str, run_dir: str) -> None:
        mode = " in check mode" if args.check else ""
        print(f"running {args.name}{mode} on {', '.join(hosts)} (run {ident})", flush=True)
        print(f"  artifacts: {run_dir}", flush=True)

    result = run_by_hand(
        components,
        action=args.name,
        hosts=hosts,
        extra_vars=extra,
        check=args.check,
        requested_by=user,
        on_start=on_start,
    )
    print(f"{result.status} (rc {result.rc}) in {result.ended_at - result.started_at:.1f}s")
    for host, stats in result.stats.items():
        print(
            f"  {host}: ok={stats.ok} changed={stats.changed} failed={stats.failures} "
            f"unreachable={stats.unreachable} skipped={stats.skipped}"
        )
    if result.error:
        print(f"  error: {result.error}")
    return 0 if result.status == "successful" else 1


def cmd_policy_check(args: argparse.Namespace, settings: Settings) -> int:
    """Validate a policy file and say what it allows."""
    path = Path(args.file) if args.file else settings.policy
    policy = load_policy(path, playbook_dir=settings.playbook_dir)
    rule = policy.detection.high_cpu
    print(f"{path}: ok")
    print(
        f"  high_cpu: above {rule.trigger:g}% for {rule.sustain:g}s, clear below "
        f"{rule.clear:g}%, step {rule.step:g}s, window {rule.window:g}s"
    )
    print(
        f"  actions: {', '.join(policy.actions)}; ladder: "
        f"{' -> '.join(policy.remediation.ladder)} -> escalate"
    )
    return 0


def cmd_chaos_cpu(args: argparse.Namespace, _settings: Settings) -> int:
    """Burn CPU on this host until nginx restarts (or for --seconds)."""
    from engine.chaos import burn_cpu  # noqa: PLC0415

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


def cmd_db_upgrade(_args: argparse.Namespace, settings: Settings) -> int:
    """Create or migrate the database schema."""
    from engine.store import open_store  # noqa: PLC0415

    sessions = open_store(settings.database_url)
    url = sessions.kw["bind"].url.render_as_string(hide_password=True)
    print(f"database {url} is at the newest schema")
    return 0


@contextmanager
def _accounts_store(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """The store for one command, its connections closed at the end (they hold no state)."""
    from engine.store import open_store  # noqa: PLC0415

    sessions = open_store(settings.database_url)
    try:
        yield sessions
    finally:
        sessions.kw["bind"].dispose()


def _read_password() -> str:
    """The new password: stdin's first line when piped, else typed twice at the terminal."""
    if not sys.stdin.isatty():
        return sys.stdin.readline().removesuffix("\n").removesuffix("\r")
    password = getpass.getpass("password: ")
    if getpass.getpass("password again: ") != password:
        raise UsageError("the two passwords differ")
    return password


def cmd_users_add(args: argparse.Namespace, settings: Settings) -> int:
    """Create a web UI account."""
    password = _read_password()
    with _accounts_store(settings) as sessions:
        user = create_user(sessions, args.name, password, args.role)
    print(f"user {user.name} created with role {user.role}")
    return 0


def cmd_users_list(args: argparse.Namespace, settings: Settings) -> int:
    """List web UI accounts by name."""
    with _accounts_store(settings) as sessions:
        rows = list_users(sessions)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    if not rows:
        print("no users")
        return 0
    print(f"{'NAME':<24} {'ROLE':<9} {'STATE':<9} {'TOKENS':>6}  CREATED")
    for row in rows:
        state = "disabled" if row["disabled"] else "enabled"
        print(
            f"{row['name']:<24} {row['role']:<9} {state:<9} {row['tokens']:>6}  {row['created_at']}"
        )
    return 0


def cmd_users_disable(args: argparse.Namespace, settings: Settings) -> int:
    """Disable an account: signed-in sessions end, tokens stop working."""
    with _accounts_store(settings) as sessions:
        disable_user(sessions, args.name)
    print(f"user {args.name} disabled")
    return 0


def cmd_tokens_create(args: argparse.Namespace, settings: Settings) -> int:
    """Issue an API token; it is printed once and only its hash is kept."""
    with _accounts_store(settings) as sessions:
        token = create_token(sessions, args.user, args.name)
    print(f"token {args.name!r} for {args.user} (shown once, store it now):", file=sys.stderr)
    print(token)
    return 0


def cmd_web(args: argparse.Namespace, settings: Settings) -> int:
    """Serve the web UI with werkzeug's threaded server until Ctrl-C or SIGTERM."""
    from werkzeug.serving import make_server  # noqa: PLC0415

    # The CLI is where the parts are put together: the engine's own modules never do this.
    from webui import create_app  # noqa: PLC0415

    _setup_logging(settings)
    app = create_app(settings=settings)
    try:
        server = make_server(args.host, args.port, app, threaded=True)
    except (OSError, SystemExit):
        # werkzeug prints why (port in use, no such address) and exits: name what was asked.
        app.extensions["autosre"].kw["bind"].dispose()
        raise UsageError(f"cannot listen on {args.host}:{args.port}") from None
    host = f"[{args.host}]" if ":" in args.host else args.host
    print(f"AutoSRE web UI on http://{host}:{server.server_port}/ (Ctrl-C stops it)", flush=True)
    if args.host not in {"127.0.0.1", "localhost", "::1"}:
        logging.warning("session cookies are Secure: serve this through HTTPS (a reverse proxy)")
    stop = threading.Event()
    previous = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}
    for sig in previous:
        signal.signal(sig, lambda _signum, _frame: stop.set())
    thread = threading.Thread(target=server.serve_forever, name="autosre-web", daemon=True)
    thread.start()
    try:
        while not stop.wait(timeout=0.5) and thread.is_alive():
            pass
    finally:
        server.shutdown()
        server.server_close()
        thread.join()
        app.extensions["autosre"].kw["bind"].dispose()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        logging.info("web UI stopped")
    if not stop.is_set():
        logging.error("the web server stopped by itself")
        return 1
    return 0


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"must be between 0 and 65535: {text!r}")
    return value


# -- parser ---------------------------------------------------------------------


def _add_approvals(sub: argparse._SubParsersAction[_Parser]) -> None:
    """The ``approvals`` subcommands: list, approve, reject."""
    approvals = sub.add_parser("approvals", help="actions waiting for a human's approval")
    asub = approvals.add_subparsers(dest="subcommand", required=True, parser_class=_Parser)
    alist = asub.add_parser("list", help="pending approvals, oldest first")
    alist.add_argument("--json", action="store_true", help="print a JSON array")
    alist.add_argument(
        "--all", action="store_true", help="every approval, newest first, whatever its status"
    )
    alist.add_argument("--limit", type=_positive_int, default=50, help="at most N (default 50)")
    alist.set_defaults(func=cmd_approvals_list)
    for name, func, verb in (
        ("approve", cmd_approvals_approve, "approve a pending action (the engine then runs it)"),
        ("reject", cmd_approvals_reject, "reject a pending action (the engine does not run it)"),
    ):
        decide = asub.add_parser(name, help=verb)
        decide.add_argument("id", type=_record_id, help="the approval's id (approvals list)")
        decide.add_argument("--note", help="why, recorded with the decision")
        decide.set_defaults(func=func)


def _add_accounts(sub: argparse._SubParsersAction[_Parser]) -> None:
    """The ``users``, ``tokens`` and ``web`` commands: web UI accounts and the server."""
    users = sub.add_parser("users", help="web UI accounts")
    usub = users.add_subparsers(dest="subcommand", required=True, parser_class=_Parser)
    uadd = usub.add_parser(
        "add", help="create an account (password: stdin's first line, or typed twice)"
    )
    uadd.add_argument("name", help="lowercase letters, digits, '_', '.', '-'")
    uadd.add_argument("--role", required=True, choices=ROLES, help="what the account may do")
    uadd.set_defaults(func=cmd_users_add)
    ulist = usub.add_parser("list", help="every account, by name")
    ulist.add_argument("--json", action="store_true", help="print a JSON array")
    ulist.set_defaults(func=cmd_users_list)
    udisable = usub.add_parser("disable", help="disable an account and its tokens")
    udisable.add_argument("name")
    udisable.set_defaults(func=cmd_users_disable)

    tokens = sub.add_parser("tokens", help="API tokens (Authorization: Bearer ...)")
    tsub = tokens.add_subparsers(dest="subcommand", required=True, parser_class=_Parser)
    tcreate = tsub.add_parser("create", help="issue a token for a user; printed once")
    tcreate.add_argument("user", help="the account the token acts as")
    tcreate.add_argument("--name", default="default", help="what the token is for")
    tcreate.set_defaults(func=cmd_tokens_create)

    web = sub.add_parser("web", help="serve the web UI (it never runs the engine)")
    web.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    web.add_argument("--port", type=_port, default=8080, help="port (default 8080; 0: any)")
    web.set_defaults(func=cmd_web)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = _Parser(prog="autosre", description="Policy-constrained self-healing for VM fleets.")
    parser.add_argument("--version", action="version", version=f"autosre {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)

    run = sub.add_parser("run", help="run the engine loop in the foreground")
    run.add_argument("--once", action="store_true", help="run one tick (and its runs), then exit")
    run.set_defaults(func=cmd_run)

    incidents = sub.add_parser("incidents", help="list and inspect incidents")
    isub = incidents.add_subparsers(dest="subcommand", required=True, parser_class=_Parser)
    ilist = isub.add_parser("list", help="list incidents, newest first")
    ilist.add_argument("--json", action="store_true", help="print a JSON array")
    ilist.add_argument("--status", choices=STATUSES, help="only incidents in this status")
    ilist.add_argument("--host", help="only incidents on this host")
    ilist.add_argument("--limit", type=_positive_int, default=50, help="at most N (default 50)")
    ilist.set_defaults(func=cmd_incidents_list)
    ishow = isub.add_parser("show", help="timeline, decisions and runs of one incident")
    ishow.add_argument("id", type=_positive_int)
    ishow.add_argument("--json", action="store_true", help="print JSON")
    ishow.set_defaults(func=cmd_incidents_show)

    _add_approvals(sub)
    _add_accounts(sub)

    playbook = sub.add_parser("playbook", help="whitelisted playbooks")
    psub = playbook.add_subparsers(dest="subcommand", required=True, parser_class=_Parser)
    psub.add_parser("list", help="the whitelisted actions").set_defaults(func=cmd_playbook_list)
    prun = psub.add_parser("run", help="run a whitelisted playbook by hand")
    prun.add_argument("name", help="action name from the policy's whitelist")
    prun.add_argument("--limit", required=True, help="inventory host(s), comma-separated")
    prun.add_argument("--check", action="store_true", help="Ansible check mode: change nothing")
    prun.add_argument(
        "-e",
        "--extra-var",
        dest="extra_vars",
        action="append",
        metavar="KEY=VALUE",
        help="an extra var the policy allows for this action (repeatable)",
    )
    prun.set_defaults(func=cmd_playbook_run)

    policy = sub.add_parser("policy", help="policy files")
    polsub = policy.add_subparsers(dest="subcommand", required=True, parser_class=_Parser)
    pcheck = polsub.add_parser("check", help="validate a policy file (default: AUTOSRE_POLICY)")
    pcheck.add_argument("file", nargs="?")
    pcheck.set_defaults(func=cmd_policy_check)

    chaos = sub.add_parser("chaos", help="chaos experiments on this host")
    csub = chaos.add_subparsers(dest="subcommand", required=True, parser_class=_Parser)
    ccpu = csub.add_parser("cpu", help="burn every core until nginx restarts")
    ccpu.add_argument("--stubborn", action="store_true", help="keep burning across restarts")
    ccpu.add_argument("--seconds", type=_seconds, default=120.0, help="upper bound (default 120)")
    ccpu.set_defaults(func=cmd_chaos_cpu)

    db = sub.add_parser("db", help="database schema")
    dsub = db.add_subparsers(dest="subcommand", required=True, parser_class=_Parser)
    dsub.add_parser("upgrade", help="create or migrate the schema").set_defaults(
        func=cmd_db_upgrade
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``autosre`` console script."""
    args = build_parser().parse_args(argv)
    func: Callable[[argparse.Namespace, Settings], int] = args.func
    try:
        return func(args, load_settings())
    except (*INPUT_ERRORS, UsageError) as exc:
        print(f"autosre: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def run() -> NoReturn:
    """Console-script wrapper: exit with main()'s status."""
    sys.exit(main())


if __name__ == "__main__":
    run()
