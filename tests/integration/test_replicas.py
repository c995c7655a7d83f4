"""Two and three `autosre run` replicas on the machine's PostgreSQL and the SSH lab: each
host is remediated by one replica only, and a replica killed (SIGKILL) mid-run has its
hosts taken over by the others once its leases lapse: its run is settled from what it left
(its orphaned ansible-playbook waited for or stopped), the host verified, never re-run
blindly. Runs and nginx restarts are counted: never two for one decision.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.store import open_store
from engine.store.leases import HostLeaseRow, ReplicaRow
from tests.fixtures.postgres import own_database
from tests.fixtures.reads import incident_detail, list_incidents, list_runs
from tests.integration.harness import AUTOSRE, ROOT, wait_for
from tests.integration.test_fleet import BURN_SECONDS, lab, quiet
from tests.lab.lab import Lab

pytestmark = [pytest.mark.integration, pytest.mark.serial]
# The fleet tests' lab fixture (four hosts of half a core), one instance for this module.
__all__ = ["lab"]

TTL = 3.0  # seconds: a dead replica's hosts are taken over this soon


@pytest.fixture
def store(postgres_template: str) -> Iterator[str]:
    with own_database(postgres_template, "replicas") as url:
        yield url


def replica_env(lab: Lab, tmp_path: Path, url: str, name: str) -> dict[str, str]:
    """One replica of the lab engine: its own data dir and name, the shared store."""
    policy = tmp_path / "policy.yaml"
    if not policy.exists():
        data = yaml.safe_load((ROOT / "policies" / "lab.yaml").read_text(encoding="utf-8"))
        policy.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
        "AUTOSRE_DATA_DIR": str(tmp_path / name),
        "AUTOSRE_DATABASE_URL": url,
        "AUTOSRE_REPLICA_ID": name,
        "AUTOSRE_LEASE_TTL": f"{TTL:g}",
        "AUTOSRE_PROMETHEUS_URL": lab.prometheus_url,
        "AUTOSRE_POLICY": str(policy),
        "AUTOSRE_INVENTORY": str(lab.inventory_path),
        "AUTOSRE_PLAYBOOK_DIR": str(ROOT / "playbooks"),
        "AUTOSRE_INTERVAL": "1",
        "AUTOSRE_PROMETHEUS_TIMEOUT": "2",
        "AUTOSRE_LOG_LEVEL": "DEBUG",
        "PYTHONUNBUFFERED": "1",
    }


@contextmanager
def replicas(
    lab: Lab, tmp_path: Path, url: str, count: int
) -> Iterator[dict[str, subprocess.Popen[bytes]]]:
    """``count`` engine processes; the ones still running are stopped (SIGTERM) at the end."""
    procs: dict[str, subprocess.Popen[bytes]] = {}
    try:
        for n in range(count):
            name = f"r{n}"
            with (tmp_path / f"{name}.log").open("wb") as out:
                procs[name] = subprocess.Popen(
                    [str(AUTOSRE), "run"],
                    env=replica_env(lab, tmp_path, url, name),
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
        yield procs
    finally:
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def holders(sessions: sessionmaker[Session]) -> dict[str, str]:
    """Host -> the replica holding its lease."""
    with sessions() as session:
        return dict(session.execute(select(HostLeaseRow.host, HostLeaseRow.replica)).all())


def alive(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Replica -> hosts, for replicas whose heartbeat is fresh."""
    with sessions() as session:
        rows = session.scalars(select(ReplicaRow)).all()
    now = time.time()
    return {r.id: r.hosts for r in rows if now - r.heartbeat_at.timestamp() <= r.ttl}


def split(sessions: sessionmaker[Session], lab: Lab, count: int) -> dict[str, str]:
    """Wait until ``count`` replicas share the lab's hosts, as evenly as they can."""
    hosts = set(lab.hosts)
    fair = -(-len(hosts) // count)

    def even() -> dict[str, str] | None:
        held = holders(sessions)
        live = alive(sessions)
        if set(held) != hosts or len(live) != count or set(held.values()) != set(live):
            return None
        return held if max(live.values()) <= fair else None

    return wait_for(f"{count} replicas to split the lab", even, 90, every=0.5)


def statuses(sessions: sessionmaker[Session], host: str) -> list[str]:
    return [i["status"] for i in list_incidents(sessions, host=host, limit=100)]


def runs_on(sessions: sessionmaker[Session], host: str) -> list[dict[str, Any]]:
    released = ("staged", "discarded")
    return [
        r
        for r in list_runs(sessions, limit=200)
        if host in r["hosts"] and r["status"] not in released
    ]


def assert_one_run_per_decision(sessions: sessionmaker[Session], host: str) -> None:
    """Every run on the host was started by one decision to execute, and no decision has
    two runs (the store keeps one run per decision; no run exists without one)."""
    decided: list[int] = []
    for incident in list_incidents(sessions, host=host, limit=100):
        detail = incident_detail(sessions, incident["id"])
        assert detail is not None
        decided += [d["run_id"] for d in detail["decisions"] if d["run_id"] is not None]
    ran = [run["id"] for run in runs_on(sessions, host) if run["trigger"] == "engine"]
    assert sorted(decided) == sorted(ran), (decided, ran)
    assert len(set(decided)) == len(decided)


def ran_by(tmp_path: Path, ident: str) -> list[str]:
    """The replicas whose log names the run (started, or staged then released, by it)."""
    return [log.stem for log in tmp_path.glob("r*.log") if ident in log.read_text("utf-8")]


@pytest.mark.parametrize("count", [2, 3])
def test_replicas_split_the_lab_and_each_burn_is_cured_by_one_replica_once(
    lab: Lab, tmp_path: Path, store: str, count: int
) -> None:
    quiet(lab)
    sessions = open_store(store)
    burning = ("web1", "web3")
    before = {name: host.nginx_pid() for name, host in lab.hosts.items()}
    try:
        with replicas(lab, tmp_path, store, count):
            held = split(sessions, lab, count)
            with ExitStack() as stack:
                for host in burning:
                    burn = lab.burn(host, BURN_SECONDS)
                    stack.callback(burn.communicate, timeout=10)
                    stack.callback(burn.kill)
                wait_for(
                    "both burns resolved",
                    lambda: all(statuses(sessions, h) == ["resolved"] for h in burning) or None,
                    150,
                    every=1.0,
                )
        for host in burning:
            (run,) = runs_on(sessions, host)  # one run, by one replica: its lease holder's
            assert run["hosts"] == [host] or set(run["hosts"]) <= set(burning)
            assert ran_by(tmp_path, run["ident"]) == [held[host]]
            assert_one_run_per_decision(sessions, host)
            assert lab.hosts[host].nginx_pid() != before[host]
        for host in set(lab.hosts) - set(burning):
            assert statuses(sessions, host) == []
            assert lab.hosts[host].nginx_pid() == before[host]
    finally:
        sessions.kw["bind"].dispose()


def test_a_replica_killed_mid_run_has_its_host_taken_over_and_settled_never_rerun(
    lab: Lab, tmp_path: Path, store: str
) -> None:
    quiet(lab)
    sessions = open_store(store)
    try:
        with replicas(lab, tmp_path, store, 2) as procs:
            held = split(sessions, lab, 2)
            host = "web2"
            victim = held[host]
            survivor = next(name for name in procs if name != victim)
            pids = {lab.hosts[host].nginx_pid()}
            burn = lab.burn(host, BURN_SECONDS)
            try:
                run = wait_for(
                    f"a run on {host}",
                    lambda: next(
                        (r for r in runs_on(sessions, host) if r["status"] == "running"), None
                    ),
                    90,
                    every=0.2,
                )
                procs[victim].send_signal(signal.SIGKILL)  # mid-run: no hand-back, no record
                procs[victim].wait(timeout=10)
                killed_at = time.monotonic()

                def settled() -> bool | None:
                    pids.add(lab.hosts[host].nginx_pid())
                    return statuses(sessions, host) == ["resolved"] or None

                wait_for(f"{host} resolved by {survivor}", settled, 150, every=0.5)
                assert holders(sessions)[host] == survivor
                assert time.monotonic() - killed_at >= TTL * 0.8  # after the lease lapsed
            finally:
                burn.kill()
                burn.communicate(timeout=10)
        runs = runs_on(sessions, host)
        first = next(r for r in runs if r["id"] == run["id"])
        # The killed run is settled by the survivor: its real result (read from the recap
        # its orphaned playbook wrote) or interrupted; never left running.
        assert first["status"] in ("successful", "failed", "interrupted"), first
        assert_one_run_per_decision(sessions, host)
        # nginx restarted at most once per run, and at least once (the burn ended with it).
        restarts = len({pid for pid in pids if pid is not None}) - 1
        assert 1 <= restarts <= len(runs), (restarts, runs)
        # Nothing the killed replica started is left running.
        assert not [
            p.pid
            for p in psutil.process_iter(["cmdline"])
            if any(run["ident"] in part for part in (p.info.get("cmdline") or []))
        ]
        log = (tmp_path / f"{survivor}.log").read_text("utf-8")
        assert "resuming incident" in log
    finally:
        sessions.kw["bind"].dispose()
