"""The composition root: which adapters this process uses, chosen from the settings.

The engine's own parts come from ``engine.components.Components``; here the metrics
sources (Prometheus, or this machine), the planner (rules, Gemini, an OpenAI-compatible
server) and the notifier are chosen and the Engine is put together. Tests build the
same pieces themselves, pointing them at their own servers.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Mapping

from engine.components import Components
from engine.errors import InventoryError
from engine.escalate import LogNotifier, Notifier
from engine.inventory import Inventory
from engine.loop import Engine
from engine.metrics import MetricsSource
from engine.metrics.local import LocalSource, local_reader
from engine.metrics.prometheus import Outage, PrometheusSource
from engine.metrics.series_map import SeriesMap
from engine.plan.llm import LLMPlanner
from engine.plan.rules import RulesPlanner
from engine.plan.situation import Planner
from engine.plan.transport import LLMTransport
from engine.policy.schema import Policy, SignalRule
from engine.record.live import LivePublisher
from engine.record.notifications import NotificationRecords
from engine.redact import RedactingFilter, Redactor
from engine.settings import Settings


def load_components(settings: Settings) -> Components:
    """The engine's parts, with the policy and inventory loaded now (bad ones refused)."""
    components = Components(settings)
    try:
        return components.load()
    except BaseException:
        components.close()  # a refused policy or inventory leaves no connection open
        raise


def build_metrics(
    settings: Settings, policy: Policy, inventory: Inventory
) -> dict[str, MetricsSource]:
    """One source per watched signal kind: Prometheus when AUTOSRE_PROMETHEUS_URL is set,
    else this host through psutil."""
    # Built once, before any source: an ambiguous inventory is refused at start.
    series = inventory.series_map() if settings.prometheus_url else None
    outage = Outage()  # one server for every kind: its outage is told once
    return {
        kind: _source(kind, rule, settings, inventory, series, outage)
        for kind, rule in policy.signals.items()
    }


def _source(
    kind: str,
    rule: SignalRule,
    settings: Settings,
    inventory: Inventory,
    series: SeriesMap | None,
    outage: Outage,
) -> MetricsSource:
    if settings.prometheus_url and series is not None:
        return PrometheusSource(
            url=settings.prometheus_url,
            query=rule.promql,
            series=series,
            outage=outage,
            lookback=rule.lookback,
            step=rule.step,
            label=rule.label,
            timeout=settings.prometheus_timeout,
            stale_after=rule.staleness,
        )
    host = settings.local_host or inventory.local_host()
    if host is None or host not in inventory.hosts:
        raise InventoryError(
            f"{inventory.path}: no local host to measure (a host with ansible_connection: local); "
            "set AUTOSRE_LOCAL_HOST, or AUTOSRE_PROMETHEUS_URL to read a fleet from Prometheus"
        )
    reader = local_reader(kind, rule)
    if reader is None:
        raise InventoryError(f"{kind} cannot be read on this machine: set AUTOSRE_PROMETHEUS_URL")
    others = [name for name in inventory.hosts if name != host]
    source = LocalSource(host=host, lookback=rule.lookback, cpu_percent=reader, other_hosts=others)
    source.prime()
    return source


def signal_thresholds(policy: Policy) -> dict[str, dict[str, float]]:
    """Per watched kind, the numbers a model is told (trigger, clear, sustain)."""
    return {
        kind: {"trigger": rule.trigger, "clear": rule.clear, "sustain_seconds": rule.sustain}
        for kind, rule in policy.signals.items()
    }


def build_transport(settings: Settings) -> LLMTransport | None:
    """The configured model's client (Gemini, OpenAI-compatible); None with the rules planner."""
    if settings.planner == "rules":
        return None
    model = settings.llm_model or ""
    if settings.planner == "gemini":
        from engine.plan.gemini import GeminiTransport  # noqa: PLC0415 - heavy SDK, load on use

        return GeminiTransport(
            model=model, api_key=settings.gemini_api_key or "", base_url=settings.llm_base_url
        )
    from engine.plan.openai import OpenAITransport  # noqa: PLC0415 - heavy SDK, load on use

    # Local servers (Ollama, llama.cpp) take any key; the client insists on one.
    return OpenAITransport(
        model=model, api_key=settings.openai_api_key or "none", base_url=settings.llm_base_url
    )


def build_planner(
    settings: Settings, policy: Policy, *, redactor: Redactor | None = None
) -> Planner:
    """The rules planner, or an LLM planner (Gemini, OpenAI-compatible) that falls back to it."""
    memory = policy.remediation.failure_memory
    rules = RulesPlanner(memory_window=memory.window, max_failures=memory.max_failures)
    transport = build_transport(settings)
    if transport is None:
        return rules
    return LLMPlanner(
        transport=transport,
        fallback=rules,
        timeout=settings.llm_timeout,
        thresholds=signal_thresholds(policy),
        redactor=redactor or Redactor(settings.secrets),
    )


def build_engine(
    components: Components,
    *,
    metrics: MetricsSource | Mapping[str, MetricsSource] | None = None,
    planner: Planner | None = None,
    clock: Callable[[], float] = time.time,
) -> Engine:
    """An Engine on the components, with the configured sources, planner and notifier."""
    settings, policy = components.settings, components.policy
    return Engine(
        components,
        metrics=metrics or build_metrics(settings, policy, components.inventory),
        planner=planner or build_planner(settings, policy, redactor=components.redactor),
        notifier=build_notifier(components),
        clock=clock,
        publisher=LivePublisher(
            components.sessions,
            replica=components.settings.replica_id if components.replicated else None,
        ),
    )


def build_notifier(
    components: Components, *, env: Mapping[str, str] | None = None, start: bool = True
) -> Notifier:
    """The log notifier, or, with channels in the policy, the outbox notifier and its
    delivery worker (started now, stopped by Engine.shutdown). The channels' URLs and keys
    come from ``env`` (this process's environment): a missing one is a SettingsError."""
    from engine.notify.deliver import DeliveryWorker  # noqa: PLC0415 - only with channels
    from engine.notify.outbox import OutboxNotifier  # noqa: PLC0415
    from engine.notify.secrets import channel_secrets  # noqa: PLC0415

    notifications = components.policy.notifications
    if not notifications.channels:
        return LogNotifier()
    secrets = channel_secrets(notifications, os.environ if env is None else env)
    redactor = components.redactor.with_secrets(secrets.values())
    _redact_logs(redactor)
    records = NotificationRecords(components.recorder.journal)
    worker = DeliveryWorker(
        records=records, notifications=notifications, secrets=secrets, redactor=redactor
    )
    groups = {name: host.groups for name, host in components.inventory.hosts.items()}
    notifier = OutboxNotifier(
        records=records,
        notifications=notifications,
        groups=groups,
        redactor=redactor,
        worker=worker,
    )
    if start:
        worker.start()
    return notifier


def _redact_logs(redactor: Redactor) -> None:
    """Hide the channels' secrets in every log line too (an HTTP library's debug line may
    carry a webhook URL): a second filter on each root handler, beside the usual one."""
    for handler in logging.getLogger().handlers:
        handler.addFilter(RedactingFilter(redactor))
