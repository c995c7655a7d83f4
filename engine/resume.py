"""After a restart, or when a replica takes hosts over: the runs a crash left in flight are
settled (never re-run blindly), and the incidents the store says are still active get their
tracks back."""

from __future__ import annotations

import logging
from collections.abc import Collection, Container
from dataclasses import dataclass

from engine.execute.locks import Locks
from engine.incident.life import Track, resume
from engine.reconcile import reconcile_runs
from engine.record.recorder import Recorder

log = logging.getLogger("autosre.engine")


@dataclass(frozen=True, slots=True)
class Resumed:
    """The tracks taken back, and the hosts whose run in flight still has a live owner (a
    run by hand, or a replica that died before its run's deadline): taken once it ends."""

    tracks: dict[str, Track]
    deferred: frozenset[str] = frozenset()


def resume_tracks(
    recorder: Recorder,
    hosts: Container[str],
    kinds: Container[str],
    now: float,
    *,
    locks: Locks,
    executor: object,
    taking: Collection[str] | None = None,
) -> Resumed:
    """Reconcile the runs a crash left in flight (engine/reconcile.py) and mark the cut-off
    ones interrupted, then the tracks (by host) of the active incidents on hosts and signal
    kinds this engine watches; ``taking``: only the runs and incidents of these hosts."""
    busy: set[str] = set()
    settled = reconcile_runs(recorder, locks, executor, hosts=taking, busy=busy)
    interrupted = recorder.runs.recover_interrupted(now, only={r.run_id for r in settled})
    if interrupted:
        log.warning("recovered %d interrupted run(s); not re-running them", len(interrupted))
    memory = recorder.memory
    waiting = {a.incident_id: a.id for a in memory.pending_approvals()}
    tracks = {}
    for active in memory.active_incidents():
        if active.host not in hosts or active.kind not in kinds:
            continue
        if (taking is not None and active.host not in taking) or active.host in busy:
            continue
        tracks[active.host] = resume(
            active.id,
            active.host,
            active.kind,
            active.status,
            active.tried,
            waiting.get(active.id),
            active.interrupted,
        )
        tried = ", ".join(active.tried) or "nothing"
        log.info(
            "%s: resuming incident %d (%s, tried %s)", active.host, active.id, active.status, tried
        )
    deferred = frozenset(busy) if taking is None else frozenset(busy.intersection(taking))
    return Resumed(tracks, deferred)
