"""The composition root: builds the real adapters from Settings and hands them to the Engine.

Tests build the same pieces themselves, pointing them at their own servers.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from engine.errors import InventoryError
from engine.escalate import LogNotifier
from engine.execute.locks import HostLocks
from engine.execute.runner import AnsibleRunnerExecutor
from engine.inventory import Inventory, load_inventory
from engine.loop import Engine
from engine.metrics.prometheus import LocalSource, MetricsSource, PrometheusSource
from engine.plan.llm import LLMPlanner
from engine.plan.rules import Planner, RulesPlanner
from engine.plan.transport import LLMTransport
from engine.policy.file import Policy, load_policy
from engine.record.audit import AuditLog
from engine.record.live import LivePublisher
from engine.record.recorder import Recorder
from engine.redact import Redactor
from engine.settings import Settings
from engine.store import open_store


@dataclass(frozen=True, slots=True)
class Components:
    """Everything loaded and validated at start, shared by the engine and the CLI."""

    settings: Settings
    policy: Policy
    inventory: Inventory
    sessions: sessionmaker[Session]
    recorder: Recorder
    executor: AnsibleRunnerExecutor
    locks: HostLocks
    # The one redactor: the engine's secrets and the inventory's, for every output.
    redactor: Redactor = field(default_factory=Redactor)


def load_components(settings: Settings) -> Components:
    """Load the policy and inventory, open and migrate the store; raise on bad input."""
    policy = load_policy(settings.policy, playbook_dir=settings.playbook_dir)
    inventory = load_inventory(settings.inventory)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return assemble(settings, policy, inventory, open_store(settings.database_url))


def build_redactor(settings: Settings, inventory: Inventory) -> Redactor:
    """The redactor of every output: the environment's secrets and the inventory's."""
    return Redactor(settings.secrets | inventory.secrets)


def assemble(
    settings: Settings, policy: Policy, inventory: Inventory, sessions: sessionmaker[Session]
) -> Components:
    """The recorder, executor and locks on an open store, all sharing one redactor."""
    redactor = build_redactor(settings, inventory)
    recorder = Recorder(
        sessions, AuditLog(settings.audit_log, redactor=redactor), redactor=redactor
    )
    executor = AnsibleRunnerExecutor(
        runs_dir=settings.runs_dir,
        inventory_path=settings.inventory,
        redactor=redactor,
        action_env={name: action.env for name, action in policy.actions.items()},
    )
    locks = HostLocks(settings.locks_dir)
    return Components(
        settings, policy, inventory, sessions, recorder, executor, locks, redactor=redactor
    )


def lookback(policy: Policy) -> float:
    """How much history one tick asks for: the sustain window plus a few steps of margin."""
    rule = policy.detection.high_cpu
    return rule.sustain + 3 * rule.step


def build_metrics(settings: Settings, policy: Policy, inventory: Inventory) -> MetricsSource:
    """Prometheus when AUTOSRE_PROMETHEUS_URL is set, else this host through psutil."""
    rule = policy.detection.high_cpu
    if settings.prometheus_url:
        return PrometheusSource(
            url=settings.prometheus_url,
            query=rule.promql,
            aliases=inventory.aliases(),
            lookback=lookback(policy),
            step=rule.step,
            label=rule.label,
            timeout=settings.prometheus_timeout,
        )
    host = settings.local_host or inventory.local_host()
    if host is None or host not in inventory.hosts:
        raise InventoryError(
            f"{inventory.path}: no local host to measure (a host with ansible_connection: local); "
            "set AUTOSRE_LOCAL_HOST, or AUTOSRE_PROMETHEUS_URL to read a fleet from Prometheus"
        )
    others = [name for name in inventory.hosts if name != host]
    source = LocalSource(host=host, lookback=lookback(policy), other_hosts=others)
    source.prime()
    return source


def build_planner(
    settings: Settings, policy: Policy, *, redactor: Redactor | None = None
) -> Planner:
    """The rules planner, or an LLM planner (Gemini, OpenAI-compatible) that falls back to it."""
    memory = policy.remediation.failure_memory
    rules = RulesPlanner(memory_window=memory.window, max_failures=memory.max_failures)
    if settings.planner == "rules":
        return rules
    transport: LLMTransport
    model = settings.llm_model or ""
    if settings.planner == "gemini":
        from engine.plan.gemini import GeminiTransport  # noqa: PLC0415 - heavy SDK, load on use

        transport = GeminiTransport(
            model=model, api_key=settings.gemini_api_key or "", base_url=settings.llm_base_url
        )
    else:
        from engine.plan.openai import OpenAITransport  # noqa: PLC0415 - heavy SDK, load on use

        # Local servers (Ollama, llama.cpp) take any key; the client insists on one.
        transport = OpenAITransport(
            model=model, api_key=settings.openai_api_key or "none", base_url=settings.llm_base_url
        )
    rule = policy.detection.high_cpu
    return LLMPlanner(
        transport=transport,
        fallback=rules,
        timeout=settings.llm_timeout,
        thresholds={
            "trigger_percent": rule.trigger,
            "clear_percent": rule.clear,
            "sustain_seconds": rule.sustain,
        },
        redactor=redactor or Redactor(settings.secrets),
    )


def build_engine(
    components: Components,
    *,
    metrics: MetricsSource | None = None,
    planner: Planner | None = None,
    clock: Callable[[], float] = time.time,
) -> Engine:
    """An Engine on the loaded components, with the configured planner and the log notifier."""
    policy = components.policy
    return Engine(
        policy=policy,
        inventory=components.inventory,
        metrics=metrics or build_metrics(components.settings, policy, components.inventory),
        planner=planner or build_planner(components.settings, policy, redactor=components.redactor),
        executor=components.executor,
        recorder=components.recorder,
        locks=components.locks,
        notifier=LogNotifier(),
        playbook_dir=components.settings.playbook_dir,
        runs_dir=components.settings.runs_dir,
        clock=clock,
        publisher=LivePublisher(components.sessions),
    )
