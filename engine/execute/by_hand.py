"""Playbooks run by hand: the same whitelist, inventory check, per-host lock and audit
as the engine's own runs; a person may cancel one through the store (cancel_watch.py)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from typing import TypeVar

from engine.components import Components
from engine.errors import RefusedError, StoreError
from engine.execute.blast_radius import BlastRadius
from engine.execute.cancel_watch import watch_for
from engine.execute.disk_room import no_room
from engine.execute.dispatch import run_ident
from engine.execute.locks import hold_for
from engine.policy.rate_limits import first_hit, longest
from engine.policy.whitelist import build_request
from engine.read.run_counts import run_marks
from engine.record.run_reason import check_reason, check_ticket
from engine.store_outage import describe, store_error
from engine.types import RunResult

T = TypeVar("T")


def run_by_hand(
    components: Components,
    *,
    action: str,
    hosts: Sequence[str],
    extra_vars: Mapping[str, str],
    check: bool,
    requested_by: str,
    on_start: Callable[[str, str], None] | None = None,
    clock: Callable[[], float] = time.time,
    limit: str | None = None,
    reason: str | None = None,
    ticket: str | None = None,
) -> RunResult:
    """Validate, lock, record, run and record again; raise RefusedError/HostBusyError first.
    ``limit``: what the person typed, when it named groups or ranges (for the record);
    ``reason``/``ticket``: why, recorded on the run (no reason: NO_REASON)."""
    reason = check_reason(reason, required=False)  # bad input is refused before anything
    ticket = check_ticket(ticket)
    settings = components.settings
    request = build_request(
        components.policy,
        components.inventory,
        settings.playbook_dir,
        action=action,
        hosts=hosts,
        extra_vars=extra_vars,
        check=check,
    )
    full = no_room(settings.runs_dir, settings.min_free_mb)
    if full is not None:
        raise RefusedError(f"{action}: {full}")
    rem = components.policy.remediation
    radius = BlastRadius(
        max_concurrent=rem.max_concurrent,
        max_group_percent=rem.max_group_percent,
        groups={name: host.groups for name, host in components.inventory.hosts.items()},
    )
    too_wide = radius.too_wide(request.hosts)
    if too_wide is not None:
        raise RefusedError(f"{action}: {too_wide}; run it on fewer hosts at a time")
    now = clock()
    ident = run_ident(action, now)
    held = _recorded(  # run leases live in the store on PostgreSQL
        ident,
        "lease",
        lambda: components.locks.acquire(
            request.hosts,
            f"manual run {ident} by {requested_by}",
            hold_for=hold_for(request.timeout),
        ),
    )
    try:  # the locks are freed however this ends, a start that cannot be recorded too
        _within_rate_limits(components, request.action, request.hosts, now, check=check)
        run_dir = settings.runs_dir / ident
        run_id = _recorded(
            ident,
            "start",
            lambda: components.recorder.runs.begin(
                request,
                ident=ident,
                artifact_dir=str(run_dir),
                trigger="manual",
                requested_by=requested_by,
                at=now,
                reason=reason,
                ticket=ticket,
            ),
        )
        try:
            _recorded(
                ident,
                "audit",
                lambda: _audit(components, action, request.hosts, requested_by, limit, run_id, now),
            )
            if on_start is not None:
                on_start(ident, str(run_dir))
        except BaseException as exc:
            # Recorded as started but never run: its record must not say it still runs.
            why = f"not run: {exc}"
            unstarted = RunResult(ident, "error", None, str(run_dir), now, clock(), {}, why)
            with suppress(Exception):  # the store may be what failed: the start's error wins
                components.recorder.runs.end(run_id, unstarted)
            raise
        with watch_for(components.sessions).watching(ident) as cancel:
            try:
                result = components.executor.run(request, ident=ident, cancel=cancel.event)
            except Exception as exc:  # the record must still say how the run ended
                result = RunResult(ident, "error", None, str(run_dir), now, clock(), {}, str(exc))
            result = cancel.labelled(result)  # "canceled by NAME" when a person asked
        _recorded(
            ident,
            f"end ({result.status})",
            lambda: components.recorder.runs.end(run_id, result),
            after="; the engine settles it from the run's artifacts at its next start",
        )
        return result
    finally:
        held.release()


def _within_rate_limits(
    components: Components, action: str, hosts: Sequence[str], now: float, *, check: bool
) -> None:
    """RefusedError naming the rate limit this run would break. Checked holding the hosts'
    locks, so no other run of these hosts starts between the count and this run's record."""
    limits = components.policy.rate_limits
    if check or not limits:  # a check-mode run changes nothing and never counts
        return
    try:
        marks = run_marks(components.sessions, since=now - longest(limits))
    except Exception as exc:
        cause = store_error(exc)
        if cause is None:
            raise
        raise StoreError(f"{action}: its rate limits cannot be counted: {describe(cause)}") from exc
    hit = first_hit(limits, marks, action=action, hosts=hosts, now=now)
    if hit is not None:
        raise RefusedError(f"{action}: {hit.reason}")


def _audit(
    components: Components,
    action: str,
    hosts: Sequence[str],
    requested_by: str,
    limit: str | None,
    run_id: int,
    now: float,
) -> None:
    """Journal what the audit of a run by hand must say: hosts held, what --limit meant."""
    # Allowed in maintenance, but the audit says so (the confirmation said it too).
    hosts_held = components.recorder.maintenance.notes(
        {h: components.inventory.hosts[h] for h in hosts}, now
    )
    if hosts_held:
        components.recorder.journal.event(
            now,
            "manual_run_in_maintenance",
            f"{requested_by} ran {action} by hand: " + "; ".join(hosts_held.values()),
            run_id=run_id,
            data={"by": requested_by, "hosts": sorted(hosts_held)},
        )
    if limit is not None:
        components.recorder.journal.event(
            now,
            "manual_run_hosts",
            f"{requested_by}'s --limit {limit!r} resolved to {', '.join(hosts)}",
            run_id=run_id,
            data={"by": requested_by, "limit": limit, "hosts": list(hosts)},
        )


def _recorded(ident: str, what: str, write: Callable[[], T], *, after: str = "") -> T:
    """``write()``; a store that cannot take it is a StoreError in one line, not a traceback."""
    try:
        return write()
    except Exception as exc:
        cause = store_error(exc)
        if cause is None:
            raise
        message = f"run {ident}: its {what} cannot be recorded: {describe(cause)}{after}"
        raise StoreError(message) from exc
