"""Launch one action decided for several hosts in the same tick, as one batched run.

Each host is locked (the engine and people never run on a host at once), the request
passes the whitelist again, the run and its incidents are recorded as started, and only
then does the run start on the dispatcher's workers. What could not start says why; a
start that cannot be recorded (the store is down) frees the hosts and raises.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from engine.errors import HostBusyError, RefusedError
from engine.execute.disk_room import no_room
from engine.execute.dispatch import RunDispatcher, run_ident
from engine.execute.locks import Held, Locks, hold_for
from engine.execute.staging import Stager
from engine.inventory import Inventory
from engine.policy.schema import Policy
from engine.policy.whitelist import build_request
from engine.record.recorder import Recorder
from engine.settings import Settings

log = logging.getLogger("autosre.engine")


@dataclass(frozen=True, slots=True)
class Decided:
    """A host whose incident's decision is to run the action."""

    host: str
    incident_id: int
    decision_id: int


@dataclass(frozen=True, slots=True)
class Launched:
    """What became of a batch: the run's ident and hosts, the busy hosts, or why none ran."""

    ident: str | None = None
    started: tuple[str, ...] = ()
    busy: dict[str, str] = field(default_factory=dict)  # host -> who holds its lock
    refused: str | None = None  # why the whole batch cannot run
    released: dict[str, str] = field(default_factory=dict)  # host -> its staged run's ident
    # host -> why not: a person stopped its staged run for this rise (engine/execute/staging.py)
    stopped: dict[str, str] = field(default_factory=dict)


class Launcher:
    """Locks, validates, records and starts the engine's runs; releases the staged ones."""

    def __init__(
        self,
        *,
        policy: Policy,
        inventory: Inventory,
        settings: Settings,
        recorder: Recorder,
        locks: Locks,
        dispatcher: RunDispatcher,
    ) -> None:
        self.policy = policy
        self.inventory = inventory
        self.playbook_dir = playbook_dir = settings.playbook_dir
        self.runs_dir = runs_dir = settings.runs_dir  # where run dirs go, for the record
        self.min_free_mb = settings.min_free_mb
        self.recorder = recorder
        self.locks = locks
        self.dispatcher = dispatcher
        self.stager = Stager(
            policy=policy,
            inventory=inventory,
            playbook_dir=playbook_dir,
            runs_dir=runs_dir,
            recorder=recorder,
            locks=locks,
            executor=dispatcher.executor,
            dispatcher=dispatcher,
            min_free_mb=settings.min_free_mb,
            enabled=settings.executor == "ansible-runner",
        )

    def _answer_staged(
        self, action: str, decided: Sequence[Decided], now: float
    ) -> tuple[list[Decided], dict[str, str], dict[str, str]]:
        """Release the staged runs; the hosts left to run, the released, the stopped."""
        released: dict[str, str] = {}
        stopped: dict[str, str] = {}
        items: list[Decided] = []
        for item in decided:
            stop = self.stager.stopped(item.host, now)
            if stop is not None:  # never started behind the back of who stopped it
                stopped[item.host] = f"{action} on {item.host} stopped: {stop}; a human has it"
                continue
            pair = (item.decision_id, item.incident_id)
            staged = self.stager.release(item.host, action, decision=pair, now=now)
            if staged is None:
                self.stager.discard(item.host, f"the verdict is to run {action} instead")
                items.append(item)
            else:
                released[item.host] = staged
        return items, released, stopped

    def launch(self, action: str, decided: Sequence[Decided], now: float) -> Launched:
        """Release the hosts' staged runs of ``action``; start one run of it on every other
        host whose lock is free."""
        items, released, stopped = self._answer_staged(action, decided, now)
        if not items:
            return Launched(released=released, stopped=stopped)
        full = no_room(self.runs_dir, self.min_free_mb)
        if full is not None:  # refused before anything is recorded: never half a record
            return Launched(
                refused=f"cannot run {action}: {full}", released=released, stopped=stopped
            )
        ident = run_ident(action, now)
        held: list[Decided] = []
        locks: list[Held] = []
        busy: dict[str, str] = {}
        for item in items:
            try:
                timeout = self.policy.actions[action].timeout
                lease = self.locks.acquire(
                    [item.host], f"engine run {ident}", hold_for=hold_for(timeout)
                )
                locks.append(lease)
                held.append(item)
            except HostBusyError as exc:
                busy[item.host] = str(exc)
        if not held:
            return Launched(busy=busy, released=released, stopped=stopped)
        hosts = [item.host for item in held]
        try:
            request = build_request(
                self.policy, self.inventory, self.playbook_dir, action=action, hosts=hosts
            )
        except RefusedError as exc:
            for lock in locks:
                lock.release()
            return Launched(
                busy=busy,
                refused=f"cannot run {action}: {exc}",
                released=released,
                stopped=stopped,
            )
        try:
            run_id = self.recorder.runs.begin(
                request,
                ident=ident,
                artifact_dir=str(self.runs_dir / ident),
                trigger="engine",
                requested_by="engine",
                at=now,
                decisions=[(item.decision_id, item.incident_id) for item in held],
            )
        except BaseException:
            # Unrecorded, the run never starts: its hosts must not stay busy for it.
            for lock in locks:
                lock.release()
            raise
        log.info("run %s: %s on %s", ident, action, ", ".join(hosts))
        self.dispatcher.start(request, ident=ident, run_id=run_id, locks=locks)
        return Launched(
            ident=ident, started=tuple(hosts), busy=busy, released=released, stopped=stopped
        )
