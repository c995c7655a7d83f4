"""Staging the engine's runs: a host whose signal is rising gets the first rung's run started
while its sustain window fills, held at the playbook's release point (engine/execute/
staged.py). An execute verdict for that action releases it; anything else discards it.

Every move is recorded before it is made: the run as staged before it starts, as released
(with the decision it carries out) before the release is given. A staged run holds its
host's lock, so nothing else runs there while it waits; it never counts as remediating.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

from engine.errors import HostBusyError, RefusedError
from engine.execute.disk_room import no_room
from engine.execute.dispatch import RunDispatcher, run_ident
from engine.execute.locks import Held, Locks, hold_for
from engine.execute.runner import Executor
from engine.execute.staged import StagedRun, has_release_point
from engine.incident.life import Phase, Track
from engine.inventory import Inventory
from engine.policy.schema import Policy
from engine.policy.trust import TrustLevel
from engine.policy.whitelist import build_request
from engine.record.recorder import Recorder
from engine.types import RunResult

log = logging.getLogger("autosre.engine")
# Seconds a staged run waits past the end of its sustain window for a verdict (a planner's
# answer and the gate); after that it ends having changed nothing, and a verdict that comes
# later starts a run of its own.
VERDICT_MARGIN = 30.0


@dataclass(slots=True)
class _Held:
    run: StagedRun
    run_id: int
    host: str
    action: str
    locks: Held
    released: bool = False
    why: str = "it ended before any verdict reached it"


class Stager:
    """Stages, releases and discards the engine's runs, one per host at most."""

    def __init__(
        self,
        *,
        policy: Policy,
        inventory: Inventory,
        playbook_dir: Path,
        runs_dir: Path,
        recorder: Recorder,
        locks: Locks,
        executor: Executor,
        dispatcher: RunDispatcher,
        min_free_mb: int = 0,
        enabled: bool = True,
    ) -> None:
        """``dispatcher`` hears how released runs end, and its cancel stops every run;
        nothing is staged with less than ``min_free_mb`` free under ``runs_dir``, nor at all
        unless ``enabled`` (a controller such as AWX cannot hold at a release point)."""
        self.policy = policy
        self.inventory = inventory
        self.playbook_dir = playbook_dir
        self.runs_dir = runs_dir
        self.recorder = recorder
        self.locks = locks
        self.executor = executor
        self.dispatcher = dispatcher
        self.min_free_mb = min_free_mb
        self.limit = policy.remediation.max_concurrent
        # signal kind -> the first rung, when its playbook can be staged
        self.first_rungs = _stageable_first_rungs(policy, playbook_dir) if enabled else {}
        self._waiting: dict[str, _Held] = {}  # host -> its staged run, not yet answered
        self._live: dict[str, _Held] = {}  # ident -> every staged run not yet ended
        self._staged_at: dict[str, float] = {}  # host -> the rise it was last staged for
        # host -> (until, who): a person stopped its staged run; this rise is not acted on
        self._stopped: dict[str, tuple[float, str]] = {}
        self._mutex = threading.Lock()  # the tick and the runs' threads share the two maps

    def stage(self, host: str, kind: str, rising_since: float, now: float) -> str | None:
        """Stage the first rung of ``kind`` on ``host`` (its ident), or None when it cannot be:
        not stageable, already staged, the limit reached, or the host busy."""
        action = self.first_rungs.get(kind)
        known = self.inventory.hosts.get(host)
        groups = known.groups if known is not None else ()
        if action is not None and self.policy.trust.level(action, groups) is not TrustLevel.AUTO:
            return None  # observe and propose never touch the host before a human says so
        sustain = self.policy.signal(kind).sustain
        with self._mutex:
            if action is None or host in self._waiting or len(self._waiting) >= self.limit:
                return None
        if self._staged_at.get(host) == rising_since:
            return None  # once per rise: a run that ended unanswered is not started again
        if no_room(self.runs_dir, self.min_free_mb) is not None:
            return None  # the launch says why, and escalates, if the verdict is to run
        ident = run_ident(action, now)
        try:
            # Held through the verdict's wait, then the run: the staged run's whole life.
            life = sustain + VERDICT_MARGIN + self.policy.actions[action].timeout
            held_locks = self.locks.acquire(
                [host], f"engine staged run {ident}", hold_for=hold_for(life)
            )
        except HostBusyError:
            return None  # someone is running on the host: the incident will wait for it
        try:
            request = build_request(
                self.policy, self.inventory, self.playbook_dir, action=action, hosts=[host]
            )
        except RefusedError as exc:
            held_locks.release()
            self._staged_at[host] = rising_since  # said once per rise, not on every tick
            log.warning("%s: cannot stage %s: %s", host, action, exc)
            return None
        hold = max(0.0, rising_since + sustain - now) + VERDICT_MARGIN
        try:
            run_id = self.recorder.staged.stage(
                request, ident=ident, artifact_dir=str(self.runs_dir / ident), at=now
            )
        except BaseException:
            held_locks.release()  # nothing starts unrecorded, and the host is not left busy
            raise
        with self._mutex:
            try:
                run = StagedRun(
                    self.executor,
                    request,
                    ident=ident,
                    hold=hold,
                    on_end=self._ended,
                    # Its own: a person's request in the store stops this run, the engine's
                    # stop every run (engine/execute/cancel_watch.py).
                    cancel=self.dispatcher.cancel_for(ident),
                )
            except RefusedError as exc:  # the playbook lost its release point since startup
                self.dispatcher.forget(ident)
                held_locks.release()
                self.recorder.staged.discarded(run_id, _not_started(ident, now), str(exc))
                return None
            held = _Held(run, run_id, host, action, held_locks)
            self._waiting[host] = held
            self._live[ident] = held
            self._staged_at[host] = rising_since
        log.info("%s: staged %s (run %s) while its signal rises", host, action, ident)
        return ident

    def release(
        self, host: str, action: str, *, decision: tuple[int, int], now: float
    ) -> str | None:
        """Release the host's staged run of ``action`` for this (decision, incident): its ident
        when it now runs for them; None when none is waiting (start a run of its own)."""
        with self._mutex:
            held = self._waiting.get(host)
            if held is None or held.action != action or held.run.answer is not None:
                return None
            del self._waiting[host]
            held.released = True
        try:
            self.recorder.staged.release(held.run_id, action=action, at=now, decisions=[decision])
        except BaseException:
            with self._mutex:  # not released after all: it waits again, unless it ended
                held.released = False
                if held.run.ident in self._live and held.run.answer is None:
                    self._waiting[host] = held
            raise
        if not held.run.release():
            # It ended (or its hold timed out) just before: its result, a failure at the
            # hold, is recorded as this run's end and the incident decides again.
            log.warning("%s: staged run %s ended before its release", host, held.run.ident)
        else:
            log.info("%s: released staged run %s (%s)", host, held.run.ident, action)
        return held.run.ident

    def discard(self, host: str, why: str) -> None:
        """End the host's waiting staged run at its release point, having changed nothing."""
        with self._mutex:
            held = self._waiting.pop(host, None)
            if held is None:
                return
            held.why = why
        held.run.discard()
        log.info("%s: discarded staged run %s: %s", host, held.run.ident, why)

    def sweep(self, tracks: Mapping[str, Track], rising: Collection[str], now: float) -> None:
        """Discard every waiting run whose verdict will not release it: the host calmed down
        before an incident opened, or its incident went on to anything but this run."""
        with self._mutex:
            waiting = list(self._waiting.values())
        for held in waiting:
            track = tracks.get(held.host)
            if track is None:
                if held.host not in rising:
                    self.discard(held.host, "the signal fell before its sustain window filled")
            elif track.phase is Phase.PLANNING or (
                track.phase is Phase.DECIDING and now >= track.retry_at
            ):
                continue  # the verdict is still to come
            else:
                verdict = f"; the verdict was {track.last_verdict[0]}" if track.last_verdict else ""
                self.discard(held.host, f"the incident is {track.phase}{verdict}")

    def tick(
        self, tracks: Mapping[str, Track], rising: Mapping[str, tuple[str, float]], now: float
    ) -> None:
        """Discard the runs no verdict will release; stage for the hosts rising (host ->
        (signal kind, when its rise began)) that no incident works on."""
        self.sweep(tracks, rising, now)
        for host, (kind, since) in rising.items():
            if host not in tracks:
                self.stage(host, kind, since, now)

    def busy(self) -> bool:
        """True while a released or discarded staged run has not ended yet."""
        with self._mutex:
            return any(held.run.answer is not None for held in self._live.values())

    def shutdown(self, timeout: float) -> None:
        """Discard every waiting run and wait (bounded) for the staged runs to end."""
        with self._mutex:
            hosts = list(self._waiting)
            live = list(self._live.values())
        for host in hosts:
            self.discard(host, "the engine is stopping")
        for held in live:
            held.run.result(timeout)

    def stopped(self, host: str, now: float) -> str | None:
        """Who stopped the host's staged run before any verdict, while that still holds (the
        rise it was staged for): the engine then runs nothing for it."""
        with self._mutex:
            until, why = self._stopped.pop(host, (0.0, ""))
        return why if now <= until else None

    def _ended(self, run: StagedRun, result: RunResult) -> None:
        with self._mutex:
            held = self._live.get(run.ident)
            if held is None:
                return
            if self._waiting.get(held.host) is held:
                del self._waiting[held.host]
        held.locks.release()
        try:
            if held.released:
                self.dispatcher.finish(run.request, held.run_id, result)
                return
            cancel = self.dispatcher.forget(run.ident)
            run_id, why, status = held.run_id, held.why, "discarded"
            if cancel is not None and cancel.by is not None and result.status == "canceled":
                why, status = f"canceled by {cancel.by} before it acted", "canceled"
                # Its incident may open within the rest of the sustain window and the verdict
                # wait; past that, a new rise is a new question.
                sustain = self.policy.signal(self._kind_of(held.action)).sustain
                until = result.ended_at + sustain + VERDICT_MARGIN
                with self._mutex:
                    self._stopped[held.host] = (until, why)
            # kept and retried like any run's end when the store cannot take it
            self.dispatcher.settle(
                result, lambda: self.recorder.staged.discarded(run_id, result, why, status=status)
            )
        finally:
            with self._mutex:  # busy() until the end is recorded
                del self._live[run.ident]

    def _kind_of(self, action: str) -> str:
        return next(kind for kind, rung in self.first_rungs.items() if rung == action)


def _stageable_first_rungs(policy: Policy, playbook_dir: Path) -> dict[str, str]:
    """Signal kind -> its ladder's first rung, for the rungs whose playbook can be staged."""
    if not policy.remediation.stage_runs:
        return {}
    found = {}
    for kind, rule in policy.signals.items():
        first = rule.ladder[0]
        spec = policy.actions.get(first)
        if spec is not None and has_release_point(playbook_dir / spec.playbook):
            found[kind] = first
    return found


def _not_started(ident: str, now: float) -> RunResult:
    return RunResult(ident, "error", None, "", now, now, {}, "not started")
