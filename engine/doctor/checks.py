"""Which checks doctor runs, built from the engine's own settings (the same files, URLs
and timeouts the engine uses); the model's client is handed in by the caller."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence

from engine.doctor.ansible import check_ansible
from engine.doctor.model import check_model
from engine.doctor.policy import check_policy
from engine.doctor.prometheus import check_prometheus
from engine.doctor.report import Finding, fail, skip
from engine.doctor.run import Check
from engine.doctor.store import check_store
from engine.errors import AutoSREError
from engine.inventory import load_inventory
from engine.inventory_types import Inventory
from engine.plan.transport import LLMTransport
from engine.policy.load import parse_policy, read_policy_data
from engine.policy.schema import Policy
from engine.settings import Settings, child_environment

DEFAULT_TIMEOUT = 30.0  # seconds each check may take (Ansible's ping of a big fleet most)


class Loaded:
    """The inventory and the policy, each read once whichever check asks first."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._inventory: Inventory | AutoSREError | None = None

    def inventory(self) -> Inventory:
        with self._lock:
            if self._inventory is None:
                try:
                    self._inventory = load_inventory(
                        self.settings.inventory,
                        timeout=self.settings.inventory_timeout,
                        cache_dir=self.settings.cache_dir,
                    )
                except AutoSREError as exc:
                    self._inventory = exc
            if isinstance(self._inventory, AutoSREError):
                raise self._inventory
            return self._inventory

    def policy(self) -> Policy:
        """The policy's rules (its playbooks are the policy check's business)."""
        path = self.settings.policy
        return parse_policy(read_policy_data(path), source=str(path))


def doctor_checks(
    settings: Settings, *, transport: LLMTransport | None, timeout: float = DEFAULT_TIMEOUT
) -> list[Check]:
    """store, policy, prometheus, ansible, model: in the order the report lists them."""
    loaded = Loaded(settings)
    env = child_environment()

    def prometheus() -> Sequence[Finding]:
        try:
            policy = loaded.policy()
        except AutoSREError:
            return [skip("prometheus", "the policy does not load (see its line)")]
        return _needing_inventory(
            "prometheus",
            loaded,
            lambda inv: check_prometheus(
                settings.prometheus_url, policy, inv, timeout=min(timeout, 10.0)
            ),
        )

    return [
        Check("store", lambda: check_store(settings.database_url), timeout),
        Check(
            "policy",
            lambda: check_policy(
                settings.policy,
                settings.playbook_dir,
                inventory=settings.inventory,
                env=env,
                timeout=timeout,
            ),
            timeout,
        ),
        Check("prometheus", prometheus, timeout),
        Check(
            "ansible",
            lambda: _needing_inventory(
                "ansible",
                loaded,
                lambda inv: check_ansible(inv.path, len(inv.hosts), timeout=timeout),
            ),
            timeout,
        ),
        Check("model", lambda: check_model(transport, timeout=min(timeout, 15.0)), timeout),
    ]


def _needing_inventory(
    name: str, loaded: Loaded, then: Callable[[Inventory], Sequence[Finding]]
) -> Sequence[Finding]:
    try:
        inventory = loaded.inventory()
    except AutoSREError as exc:
        return [fail(name, f"the inventory cannot be used: {exc}")]
    return then(inventory)
