"""The replicas' metric families for /metrics: one series per replica, by its name."""

from __future__ import annotations

from prometheus_client.core import GaugeMetricFamily, Metric

from engine.read.replicas import ReplicaView


def replica_families(replicas: list[ReplicaView]) -> list[Metric]:
    """Up, hosts, run leases and heartbeat age of each replica seen within a day."""
    up = GaugeMetricFamily(
        "autosre_replica_up",
        "Whether the engine replica's heartbeat is within its lease TTL (1) or not (0).",
        labels=["replica"],
    )
    hosts = GaugeMetricFamily(
        "autosre_replica_hosts",
        "Host leases the replica held at its last heartbeat.",
        labels=["replica"],
    )
    runs = GaugeMetricFamily(
        "autosre_replica_run_leases",
        "Hosts held by the replica's playbook runs at its last heartbeat.",
        labels=["replica"],
    )
    age = GaugeMetricFamily(
        "autosre_replica_heartbeat_age_seconds",
        "Seconds since the replica's last heartbeat.",
        labels=["replica"],
    )
    for replica in replicas:
        up.add_metric([replica.id], 1 if replica.alive else 0)
        hosts.add_metric([replica.id], replica.hosts)
        runs.add_metric([replica.id], replica.run_leases)
        age.add_metric([replica.id], replica.heartbeat_age_seconds)
    return [up, hosts, runs, age]
