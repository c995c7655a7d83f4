"""Reload the policy in a running engine, validated first, at a tick boundary.

Asked by SIGHUP (the handler only sets a flag) or through the store: `autosre policy
reload` writes the request time under ``policy_reload_request`` in engine_stats, which
every engine (every replica) reads once per tick. The answer is a timeline event:
``policy_reloaded`` (the file's digest, what needs a restart) or ``policy_reload_failed``
(why; the old policy stays), with the request time, so the CLI can wait for it.
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections.abc import Callable, Mapping
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.errors import PolicyError
from engine.inventory_types import InventoryHost
from engine.policy.load import load_policy
from engine.policy.schema import Policy
from engine.policy.trust import check_groups, inventory_groups
from engine.store.models import EngineStat, Event
from engine.timeutil import to_dt

if TYPE_CHECKING:
    from engine.loop import Engine

log = logging.getLogger("autosre.policy")
REQUEST_STAT = "policy_reload_request"
RELOADED = "policy_reloaded"
FAILED = "policy_reload_failed"
# Sections the running engine built its parts from: a change waits for a restart.
AT_START = ("signals", "notifications", "alerts", "retention")
AT_START_REMEDIATION = ("max_concurrent", "max_group_percent", "stage_runs")


def file_digest(path: Path) -> str:
    """A short digest of the policy file's bytes, to tell which file an engine runs."""
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def trust_in_force(
    policy: Policy, hosts: Mapping[str, InventoryHost], host: str, action: str
) -> str | None:
    """The trust level the gate applies to an action on a host; None if not whitelisted."""
    if action not in policy.actions:
        return None
    known = hosts.get(host)
    return str(policy.trust.level(action, known.groups if known else ()))


def check_policy(path: Path, playbook_dir: Path, hosts: Mapping[str, InventoryHost]) -> Policy:
    """Load a policy file and check it against the inventory (PolicyError on a problem)."""
    policy = load_policy(path, playbook_dir=playbook_dir)
    check_groups(policy.trust, inventory_groups(hosts), source=str(path))
    return policy


def merge_live(old: Policy, new: Policy, *, source: str) -> tuple[Policy, list[str]]:
    """The policy the engine can switch to now: the new one, with the sections it built its
    parts from kept as they were; and the names of those that changed (need a restart)."""
    restart = [name for name in AT_START if getattr(old, name) != getattr(new, name)]
    keep: dict[str, Any] = {name: getattr(old, name) for name in restart}
    rem_old, rem_new = old.remediation, new.remediation
    changed = [f for f in AT_START_REMEDIATION if getattr(rem_old, f) != getattr(rem_new, f)]
    if changed:
        keep["remediation"] = rem_new.model_copy(update={f: getattr(rem_old, f) for f in changed})
        restart += [f"remediation.{f}" for f in changed]
    templates = [
        name
        for name, spec in new.actions.items()
        if name not in old.actions or old.actions[name].awx_job_template != spec.awx_job_template
    ]
    if any(new.actions[name].awx_job_template is not None for name in templates):
        # The AWX executor maps actions to job templates at start (engine/components.py).
        restart.append("actions' awx_job_template (with AUTOSRE_EXECUTOR=awx)")
    merged = new.model_copy(update=keep) if keep else new
    problem = merged.cross_check()
    if problem is not None:  # e.g. an old ladder naming an action the new file removed
        field, reason = problem
        raise PolicyError(source, field, f"{reason} (with {', '.join(restart)} as running)")
    return merged, restart


def apply_policy(engine: Engine, policy: Policy) -> None:
    """Switch every part of the engine that holds the policy, between two ticks."""
    engine.policy = policy
    for part in (engine.decider, engine.launcher, engine.run_stage, engine.stager):
        part.policy = policy


class PolicyReloader:
    """Checks once per tick whether a reload was asked for, and carries it out."""

    def __init__(
        self,
        engine: Engine,
        *,
        sessions: sessionmaker[Session],
        path: Path,
        playbook_dir: Path,
        replica: str = "",
        clock: Callable[[], float],
    ) -> None:
        self.engine = engine
        self.sessions = sessions
        self.path = path
        self.playbook_dir = playbook_dir
        self.replica = replica
        self.clock = clock
        self.signalled = threading.Event()
        self.seen = self._asked()  # a request older than this engine is not for it
        try:
            self.digest: str | None = file_digest(path)
        except OSError:
            self.digest = None

    def request(self) -> None:
        """Ask for a reload at the next tick (safe in a signal handler: sets a flag only)."""
        self.signalled.set()

    def _asked(self) -> float:
        return _requested(self.sessions)

    def check(self) -> bool | None:
        """Reload if asked (by a signal or the store): True if reloaded, False if refused,
        None if nobody asked. Never raises for a bad file: the old policy stays."""
        asked = self._asked()
        from_store = asked > self.seen
        if not (from_store or self.signalled.is_set()):
            return None
        self.signalled.clear()
        self.seen = max(self.seen, asked)
        data: dict[str, Any] = {"request": asked if from_store else None, "replica": self.replica}
        source = str(self.path)
        try:
            digest = file_digest(self.path)
            fresh = check_policy(self.path, self.playbook_dir, self.engine.inventory.hosts)
            merged, restart = merge_live(self.engine.policy, fresh, source=source)
        except OSError as exc:
            return self._refused(PolicyError(source, "", f"cannot read: {exc.strerror}"), data)
        except PolicyError as exc:
            return self._refused(exc, data)
        apply_policy(self.engine, merged)
        self.digest = digest
        later = f"; needs a restart to apply: {', '.join(restart)}" if restart else ""
        message = f"policy reloaded from {source} (digest {digest}){later}"
        log.info("%s", message)
        data.update(digest=digest, needs_restart=restart)
        self.engine.recorder.journal.event(self.clock(), RELOADED, message, data=data)
        return True

    def _refused(self, exc: PolicyError, data: dict[str, Any]) -> bool:
        message = f"policy reload refused, the running policy stays: {exc}"
        log.error("%s", message)
        data.update(error=str(exc), digest=self.digest)
        self.engine.recorder.journal.event(self.clock(), FAILED, message, data=data)
        return False


def _requested(sessions: sessionmaker[Session]) -> float:
    """The latest request's time (0: none); a value that is not a time counts as none, so a
    stray NaN or infinity in the row never stops later requests from being newer."""
    with sessions() as session:
        row = session.get(EngineStat, REQUEST_STAT)
        value = float(row.value) if row is not None else 0.0
    return value if math.isfinite(value) and value < 1e12 else 0.0


def request_reload(sessions: sessionmaker[Session], at: float) -> float:
    """Ask every running engine to reload (through the store); the request's time."""
    last = _requested(sessions)
    with sessions() as session, session.begin():
        stamp = max(at, last + 1e-3)  # always newer than the last one
        session.merge(EngineStat(name=REQUEST_STAT, value=stamp, updated_at=to_dt(at)))
    return stamp


def reload_answers(sessions: sessionmaker[Session], request: float) -> list[dict[str, Any]]:
    """The engines' answers to one request: each event's data, with its kind and time."""
    since: datetime = to_dt(request - 1.0)
    query = select(Event).where(Event.kind.in_((RELOADED, FAILED)), Event.at >= since)
    with sessions() as session:
        rows = session.scalars(query.order_by(Event.id)).all()
        return [
            {**row.data, "kind": row.kind, "message": row.message}
            for row in rows
            if row.data.get("request") == request
        ]
