"""The engine's parts for one process, made from the settings in one place.

The CLI, the engine loop and the web UI all take their store, policy, inventory,
redactor, recorder, executor and host locks from one ``Components``, which the
composition root (autosre/wiring.py) makes, so every run, by the engine or by hand,
shares the same redactor, audit log, allowed environment and locks. The store opens at
once (and refuses a schema older than the code); the policy and the inventory load on
first use, once, and what depends on them with them.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session, sessionmaker

from engine.errors import AutoSREError, PolicyError, SettingsError
from engine.execute.awx import AwxExecutor
from engine.execute.awx_client import AwxClient
from engine.execute.locks import HostLocks, Locks
from engine.execute.runner import AnsibleRunnerExecutor, Executor
from engine.inventory import Inventory, load_inventory
from engine.lease.owner import process_owner
from engine.lease.registry import Registry
from engine.lease.run_leases import DbHostLocks
from engine.lease.share import LeasedShare, WholeFleet
from engine.notify.person_resolve import PersonResolveNotices
from engine.policy.load import load_policy
from engine.policy.schema import Policy
from engine.record.audit import AuditLog
from engine.record.notifications import NotificationRecords
from engine.record.recorder import Recorder
from engine.redact import Redactor
from engine.settings import Settings
from engine.store import open_store

T = TypeVar("T")
log = logging.getLogger(__name__)


class Components:
    """The store, policy, inventory, redactor, recorder, executor and locks of one process."""

    def __init__(
        self,
        settings: Settings,
        *,
        sessions: sessionmaker[Session] | None = None,
        inventory: Inventory | None = None,
    ) -> None:
        """``sessions`` and ``inventory``: already opened or loaded (tests share them)."""
        self.settings = settings
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        self.sessions = sessions if sessions is not None else open_store(settings.database_url)
        self._built: dict[str, object] = {} if inventory is None else {"inventory": inventory}
        self._lock = threading.RLock()  # web requests and the CLI may ask at once
        self._policy_stamp: tuple[int, int, int] | None = None  # the loaded file's (_stamp)

    def _once(self, name: str, build: Callable[[], T]) -> T:
        with self._lock:
            if name not in self._built:
                self._built[name] = build()
            found: T = self._built[name]  # type: ignore[assignment]
            return found

    @property
    def policy(self) -> Policy:
        """The policy file, validated (PolicyError on the first problem)."""
        return self._once("policy", self._load_policy)

    def _load_policy(self) -> Policy:
        stamp = _stamp(self.settings.policy)
        policy = load_policy(self.settings.policy, playbook_dir=self.settings.playbook_dir)
        self._policy_stamp = stamp
        return policy

    def refresh_policy(self) -> bool:
        """Take the policy file again if it changed on disk since it was loaded (the web UI
        does, between requests, so that its whitelist and trust levels are the file's): True
        when a new one is in force. A file that does not load leaves the old one in force and
        raises PolicyError, once per change of the file."""
        with self._lock:
            if "policy" not in self._built or _stamp(self.settings.policy) == self._policy_stamp:
                return False
            self._policy_stamp = _stamp(self.settings.policy)
            policy = load_policy(self.settings.policy, playbook_dir=self.settings.playbook_dir)
            self._built["policy"] = policy
            self._built.pop("person_resolve", None)  # routes the policy's notifications
            return True

    @property
    def inventory(self) -> Inventory:
        """The inventory as Ansible reads it (InventoryError when it cannot be used)."""
        settings = self.settings
        return self._once(
            "inventory",
            lambda: load_inventory(
                settings.inventory, timeout=settings.inventory_timeout, cache_dir=settings.cache_dir
            ),
        )

    @property
    def redactor(self) -> Redactor:
        """The one redactor: the environment's secrets and the inventory's, for every output."""
        return self._once(
            "redactor", lambda: Redactor(self.settings.secrets | self.inventory.secrets)
        )

    @property
    def recorder(self) -> Recorder:
        """The write side of the store and the audit log, redacting what it writes."""

        def build() -> Recorder:
            audit = AuditLog(self.settings.audit_log, redactor=self.redactor)
            recorder = Recorder(self.sessions, audit, redactor=self.redactor)
            recorder.handling.on_resolved = self._person_resolved
            return recorder

        return self._once("recorder", build)

    def _person_resolved(self, **notice: Any) -> None:
        """Queue the resolve of an incident a person closed, if the policy has channels;
        built at the first close, so commands that never close one need no policy."""
        try:
            notices = self._once(
                "person_resolve",
                lambda: PersonResolveNotices(
                    records=NotificationRecords(self.recorder.journal),
                    notifications=self.policy.notifications,
                    groups={n: h.groups for n, h in self.inventory.hosts.items()},
                    redactor=self.redactor,
                ),
            )
        except AutoSREError as exc:  # the close stands; its notice cannot be routed
            log.error(
                "incident %s was resolved, but no resolve notice: %s",
                notice.get("incident_id"),
                exc,
            )
            return
        notices(**notice)

    @property
    def executor(self) -> Executor:
        """Runs playbooks under runs_dir, redacting as it goes: locally with ansible-runner,
        or as job templates on AWX (AUTOSRE_EXECUTOR=awx)."""

        def build() -> Executor:
            if self.settings.executor == "awx":
                return self._awx_executor()
            return AnsibleRunnerExecutor(
                runs_dir=self.settings.runs_dir,
                inventory_path=self.settings.inventory,
                redactor=self.redactor,
                fact_cache_dir=self.settings.facts_dir,
            )

        return self._once("executor", build)

    def _awx_executor(self) -> AwxExecutor:
        """The AWX executor; PolicyError naming the first action without a job template."""
        settings = self.settings
        templates: dict[str, int | str] = {}
        for name, spec in self.policy.actions.items():
            if spec.awx_job_template is None:
                raise PolicyError(
                    str(settings.policy),
                    f"actions.{name}.awx_job_template",
                    "must be set when AUTOSRE_EXECUTOR=awx",
                )
            templates[name] = spec.awx_job_template
        if settings.awx_url is None or settings.awx_token is None:  # load_settings refuses it
            raise SettingsError("AUTOSRE_AWX_URL", "and AUTOSRE_AWX_TOKEN must be set for awx")
        client = AwxClient(settings.awx_url, settings.awx_token, timeout=settings.awx_timeout)
        return AwxExecutor(
            client, templates=templates, runs_dir=settings.runs_dir, redactor=self.redactor
        )

    @property
    def replicated(self) -> bool:
        """True on PostgreSQL: replicas may share the store, so hosts are leased there."""
        return bool(self.sessions.kw["bind"].dialect.name == "postgresql")

    @property
    def locks(self) -> Locks:
        """Per-host locks shared by the engine and runs by hand: run leases in the store on
        PostgreSQL (every replica and every UI sees them), lock files on one machine."""

        def build() -> Locks:
            settings = self.settings
            if self.replicated:
                owner = process_owner(settings.replica_id)
                return DbHostLocks(self.sessions, owner=owner, ttl=settings.lease_ttl)
            return HostLocks(settings.locks_dir)

        return self._once("locks", build)

    def host_share(self) -> LeasedShare | WholeFleet:
        """The hosts this engine replica watches (a new share each call: one per engine)."""
        locks = self.locks
        registry = Registry(
            self.sessions,
            self.settings.replica_id,
            ttl=self.settings.lease_ttl,
            run_leases=locks.held if isinstance(locks, DbHostLocks) else lambda: 0,
        )
        hosts = self.inventory.hosts
        return LeasedShare(registry, hosts) if self.replicated else WholeFleet(registry, hosts)

    def load(self) -> Components:
        """Load the policy and the inventory now (to refuse bad ones at start); self."""
        _ = self.policy, self.inventory
        if self.settings.executor == "awx":
            _ = self.executor  # an action without a job template is refused at start
        return self

    def close(self) -> None:
        """Stop renewing run leases and close the store's connections."""
        locks = self._built.get("locks")
        if isinstance(locks, DbHostLocks):
            locks.close()
        self.sessions.kw["bind"].dispose()


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """What tells a changed file: its inode, size and modification time (None: unreadable)."""
    try:
        found = path.stat()
    except OSError:
        return None
    return (found.st_ino, found.st_size, found.st_mtime_ns)
