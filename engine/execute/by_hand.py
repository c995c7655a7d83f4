"""Playbooks run by hand: the same whitelist, inventory check, per-host lock and audit
as the engine's own runs."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence

from engine.components import Components
from engine.execute.dispatch import run_ident
from engine.policy.whitelist import build_request
from engine.types import RunResult


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
) -> RunResult:
    """Validate, lock, record, run and record again; raise RefusedError/HostBusyError first."""
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
    now = clock()
    ident = run_ident(action, now)
    held = components.locks.acquire(request.hosts, f"manual run {ident} by {requested_by}")
    try:
        run_dir = settings.runs_dir / ident
        run_id = components.recorder.runs.begin(
            request,
            ident=ident,
            artifact_dir=str(run_dir),
            trigger="manual",
            requested_by=requested_by,
            at=now,
        )
        if on_start is not None:
            on_start(ident, str(run_dir))
        try:
            result = components.executor.run(request, ident=ident)
        except Exception as exc:  # the record must still say how the run ended
            result = RunResult(ident, "error", None, str(run_dir), now, clock(), {}, str(exc))
        components.recorder.runs.end(run_id, result)
        return result
    finally:
        held.release()
