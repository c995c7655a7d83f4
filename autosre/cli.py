"""The ``autosre`` command line. Bad input exits with status 2 and a message, never a traceback."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import NoReturn

from autosre.commands.admin import (
    cmd_db_upgrade,
    cmd_tokens_create,
    cmd_users_add,
    cmd_users_disable,
    cmd_users_enable,
    cmd_users_list,
    cmd_web,
)
from autosre.commands.chaos import (
    cmd_chaos_disk,
    cmd_chaos_memory,
    cmd_chaos_nginx_down,
    percent_arg,
)
from autosre.commands.common import (
    EXIT_USAGE,
    Parser,
    port_arg,
    positive_int,
    printable,
    record_id,
    seconds_arg,
)
from autosre.commands.doctor import add_commands as add_doctor_commands
from autosre.commands.eval import add_commands as add_eval_commands
from autosre.commands.incidents import (
    add_handling_commands,
    cmd_approvals_approve,
    cmd_approvals_list,
    cmd_approvals_reject,
    cmd_incidents_list,
    cmd_incidents_show,
)
from autosre.commands.maintenance import add_commands as add_maintenance_commands
from autosre.commands.operate import (
    cmd_chaos_cpu,
    cmd_playbook_list,
    cmd_playbook_run,
    cmd_policy_check,
    cmd_policy_reload,
    cmd_run,
)
from autosre.commands.prune import add_command as add_prune_command
from autosre.commands.runs import add_commands as add_runs_commands
from engine import __version__
from engine.accounts.users import ROLES
from engine.errors import AutoSREError
from engine.incident.life import IncidentStatus
from engine.settings import Settings, load_settings

# -- parser ---------------------------------------------------------------------


def _add_bound(parser: Parser) -> None:
    parser.add_argument(
        "--seconds", type=seconds_arg, default=120.0, help="upper bound (default 120)"
    )


def _add_chaos_kinds(csub: argparse._SubParsersAction[Parser]) -> None:
    """The ``chaos`` subcommands of the memory, disk and service-down signal kinds."""
    cmem = csub.add_parser("memory", help="hold memory until the service restarts")
    cmem.add_argument("--percent", type=percent_arg, default=95.0, help="host use to reach")
    cmem.add_argument("--service", default="nginx", help="whose restart ends it (default nginx)")
    cmem.add_argument("--max-mb", type=positive_int, default=4096, help="refuse to hold more")
    cmem.add_argument("--stubborn", action="store_true", help="hold on across restarts")
    _add_bound(cmem)
    cmem.set_defaults(func=cmd_chaos_memory)
    cdisk = csub.add_parser("disk", help="fill a filesystem until the file is cleaned away")
    cdisk.add_argument("--path", required=True, help="directory in a temp or lab data area")
    cdisk.add_argument("--percent", type=percent_arg, default=95.0, help="fs use to reach")
    cdisk.add_argument("--max-mb", type=positive_int, default=1024, help="refuse to write more")
    cdisk.add_argument("--stubborn", action="store_true", help="write the file again if cleaned")
    _add_bound(cdisk)
    cdisk.set_defaults(func=cmd_chaos_disk)
    cdown = csub.add_parser("nginx-down", help="stop nginx until something starts it")
    cdown.add_argument("--stubborn", action="store_true", help="also break its config")
    _add_bound(cdown)
    cdown.set_defaults(func=cmd_chaos_nginx_down)


def _add_approvals(sub: argparse._SubParsersAction[Parser]) -> None:
    """The ``approvals`` subcommands: list, approve, reject."""
    approvals = sub.add_parser("approvals", help="actions waiting for a human's approval")
    asub = approvals.add_subparsers(dest="subcommand", required=True, parser_class=Parser)
    alist = asub.add_parser("list", help="pending approvals, oldest first")
    alist.add_argument("--json", action="store_true", help="print a JSON array")
    alist.add_argument(
        "--all", action="store_true", help="every approval, newest first, whatever its status"
    )
    alist.add_argument("--limit", type=positive_int, default=50, help="at most N (default 50)")
    alist.set_defaults(func=cmd_approvals_list)
    for name, func, verb in (
        ("approve", cmd_approvals_approve, "approve a pending action (the engine then runs it)"),
        ("reject", cmd_approvals_reject, "reject a pending action (the engine does not run it)"),
    ):
        decide = asub.add_parser(name, help=verb)
        decide.add_argument("id", type=record_id, help="the approval's id (approvals list)")
        decide.add_argument("--note", help="why, recorded with the decision")
        decide.set_defaults(func=func)


def _add_accounts(sub: argparse._SubParsersAction[Parser]) -> None:
    """The ``users``, ``tokens`` and ``web`` commands: web UI accounts and the server."""
    users = sub.add_parser("users", help="web UI accounts")
    usub = users.add_subparsers(dest="subcommand", required=True, parser_class=Parser)
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
    uenable = usub.add_parser("enable", help="enable a disabled account again")
    uenable.add_argument("name")
    uenable.set_defaults(func=cmd_users_enable)

    tokens = sub.add_parser("tokens", help="API tokens (Authorization: Bearer ...)")
    tsub = tokens.add_subparsers(dest="subcommand", required=True, parser_class=Parser)
    tcreate = tsub.add_parser("create", help="issue a token for a user; printed once")
    tcreate.add_argument("user", help="the account the token acts as")
    tcreate.add_argument("--name", default="default", help="what the token is for")
    tcreate.set_defaults(func=cmd_tokens_create)

    web = sub.add_parser("web", help="serve the web UI (it never runs the engine)")
    web.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    web.add_argument("--port", type=port_arg, default=8080, help="port (default 8080; 0: any)")
    web.set_defaults(func=cmd_web)


def _add_playbook(sub: argparse._SubParsersAction[Parser]) -> None:
    """``autosre playbook list|run``."""
    playbook = sub.add_parser("playbook", help="whitelisted playbooks")
    psub = playbook.add_subparsers(dest="subcommand", required=True, parser_class=Parser)
    psub.add_parser("list", help="the whitelisted actions").set_defaults(func=cmd_playbook_list)
    prun = psub.add_parser("run", help="run a whitelisted playbook by hand")
    prun.add_argument("name", help="action name from the policy's whitelist")
    prun.add_argument(
        "--limit",
        required=True,
        help="hosts, groups or ranges like web[1:3], comma-separated (resolved and shown first)",
    )
    prun.add_argument(
        "--yes", action="store_true", help="run on the hosts a group or range resolves to"
    )
    prun.add_argument("--check", action="store_true", help="Ansible check mode: change nothing")
    prun.add_argument(
        "-e",
        "--extra-var",
        dest="extra_vars",
        action="append",
        metavar="KEY=VALUE",
        help="an extra var the policy allows for this action (repeatable)",
    )
    prun.add_argument(
        "--reason", help='why it runs, 1-200 printable characters (default: "(none given)")'
    )
    prun.add_argument("--ticket", help="a ticket reference like INC-1234, recorded with the run")
    prun.set_defaults(func=cmd_playbook_run)


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = Parser(prog="autosre", description="Policy-constrained self-healing for VM fleets.")
    parser.add_argument("--version", action="version", version=f"autosre {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    run = sub.add_parser("run", help="run the engine loop in the foreground")
    run.add_argument("--once", action="store_true", help="run one tick (and its runs), then exit")
    run.set_defaults(func=cmd_run)

    incidents = sub.add_parser("incidents", help="list and inspect incidents")
    isub = incidents.add_subparsers(dest="subcommand", required=True, parser_class=Parser)
    ilist = isub.add_parser("list", help="list incidents, newest first")
    ilist.add_argument("--json", action="store_true", help="print a JSON array")
    ilist.add_argument(
        "--status",
        choices=[status.value for status in IncidentStatus],
        help="only incidents in this status",
    )
    ilist.add_argument("--host", help="only incidents on this host")
    ilist.add_argument("--limit", type=positive_int, default=50, help="at most N (default 50)")
    ilist.set_defaults(func=cmd_incidents_list)
    ishow = isub.add_parser("show", help="timeline, decisions and runs of one incident")
    ishow.add_argument("id", type=positive_int)
    ishow.add_argument("--json", action="store_true", help="print JSON")
    ishow.set_defaults(func=cmd_incidents_show)
    add_handling_commands(isub)

    _add_approvals(sub)
    _add_accounts(sub)
    add_maintenance_commands(sub)
    add_runs_commands(sub)
    add_prune_command(sub)
    add_eval_commands(sub)
    add_doctor_commands(sub)

    _add_playbook(sub)

    policy = sub.add_parser("policy", help="policy files")
    polsub = policy.add_subparsers(dest="subcommand", required=True, parser_class=Parser)
    pcheck = polsub.add_parser("check", help="validate a policy file (default: AUTOSRE_POLICY)")
    pcheck.add_argument("file", nargs="?")
    pcheck.add_argument(
        "--fix",
        action="store_true",
        help="rewrite a version 1 file in the current layout (the old one kept as FILE.v1)",
    )
    pcheck.set_defaults(func=cmd_policy_check)
    preload = polsub.add_parser(
        "reload", help="validate AUTOSRE_POLICY, then have the running engine(s) reload it"
    )
    preload.add_argument(
        "--wait",
        type=seconds_arg,
        default=30.0,
        help="how long to wait for the engines' answer (default 30s)",
    )
    preload.set_defaults(func=cmd_policy_reload)

    chaos = sub.add_parser("chaos", help="chaos experiments on this host")
    csub = chaos.add_subparsers(dest="subcommand", required=True, parser_class=Parser)
    ccpu = csub.add_parser("cpu", help="burn every core until nginx restarts")
    ccpu.add_argument("--stubborn", action="store_true", help="keep burning across restarts")
    ccpu.add_argument(
        "--seconds", type=seconds_arg, default=120.0, help="upper bound (default 120)"
    )
    ccpu.set_defaults(func=cmd_chaos_cpu)
    _add_chaos_kinds(csub)

    db = sub.add_parser("db", help="database schema")
    dsub = db.add_subparsers(dest="subcommand", required=True, parser_class=Parser)
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
    except AutoSREError as exc:  # the one place errors become exit status 2
        # Errors may quote a host, a playbook or a file: never a terminal escape.
        print(printable(f"autosre: error: {exc}"), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def run() -> NoReturn:
    """Console-script wrapper: exit with main()'s status."""
    sys.exit(main())


if __name__ == "__main__":
    run()
