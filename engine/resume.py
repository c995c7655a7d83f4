"""After a restart: the runs a crash left in flight are marked (never re-run blindly), and
the incidents the store says are still active get their tracks back."""

from __future__ import annotations

import logging
from collections.abc import Container

from engine.execute.locks import HostLocks
from engine.incident.life import Track, resume
from engine.reconcile import reconcile_runs
from engine.record.recorder import Recorder

log = logging.getLogger("autosre.engine")


def resume_tracks(
    recorder: Recorder,
    hosts: Container[str],
    kinds: Container[str],
    now: float,
    *,
    locks: HostLocks,
    executor: object,
) -> dict[str, Track]:
    """Reconcile the runs a crash left in flight (engine/reconcile.py) and mark the cut-off
    ones interrupted, then the tracks (by host) of the active incidents on hosts and signal
    kinds this engine still watches."""
    settled = reconcile_runs(recorder, locks, executor)
    interrupted = recorder.runs.recover_interrupted(now, only={r.run_id for r in settled})
    if interrupted:
        log.warning("recovered %d interrupted run(s); not re-running them", len(interrupted))
    memory = recorder.memory
    waiting = {a.incident_id: a.id for a in memory.pending_approvals()}
    tracks = {}
    for active in memory.active_incidents():
        if active.host not in hosts or active.kind not in kinds:
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
    return tracks
