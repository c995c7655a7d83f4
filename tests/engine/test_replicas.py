"""Engine replicas on the machine's real PostgreSQL, in one process: they split the fleet,
each host is remediated by one replica only, runs by hand take the same leases, and a
replica that stops renewing has its hosts and its incidents taken over, never re-run.

Real Ansible runs (a playbook that notes each host it ran on), a real store; the metrics
come through the engine's MetricsSource seam. Killing a replica process for real, with
its playbook left running, is tests/integration/test_replicas.py.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from engine.components import Components
from engine.errors import HostBusyError
from engine.execute.by_hand import run_by_hand
from engine.lease.share import LeasedShare
from engine.loop import Engine
from engine.plan.rules import RulesPlanner
from engine.settings import load_settings
from engine.store import open_store
from tests.fixtures.postgres import own_database
from tests.fixtures.reads import list_incidents, list_runs
from tests.fixtures.scripted import ScriptedSource, SkewClock

HOSTS = tuple(f"web{n}" for n in range(1, 7))
TTL = 2.0
NOTE = """- name: Note the host
  hosts: all
  gather_facts: false
  tasks:
    - name: Append its name
      ansible.builtin.command:
        argv: [sh, -c, 'sleep NAP; echo {{ inventory_hostname }} >> MARKS']
      changed_when: true
"""
POLICY = """
detection:
  high_cpu: {trigger: 80, clear: 50, window: 1s, sustain: 0s, step: 1s, stale_after: 3s}
actions:
  note: {playbook: note.yml, description: note the host, timeout: 60s}
trust: {actions: {note: auto}}
remediation:
  ladder: [note]
  cooldown: 1h
  max_attempts: 1
  max_concurrent: 6
  max_group_percent: 100
  verify_timeout: 30s
"""
LOCAL = '{ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}'


class Fleet:
    """Six local hosts, a shared PostgreSQL store, and engine replicas on it."""

    def __init__(self, tmp_path: Path, url: str, *, nap: float = 0.0) -> None:
        self.tmp_path = tmp_path
        self.url = url
        self.marks = tmp_path / "marks"
        books = tmp_path / "playbooks"
        books.mkdir()
        (books / "note.yml").write_text(
            NOTE.replace("MARKS", str(self.marks)).replace("NAP", f"{nap:g}")
        )
        (tmp_path / "policy.yaml").write_text(POLICY)
        lines = "\n".join(f"    {host}: {LOCAL}" for host in HOSTS)
        (tmp_path / "inventory.yml").write_text(f"all:\n  hosts:\n{lines}\n")
        self.values: dict[str, float | None] = dict.fromkeys(HOSTS, 20.0)
        self.clock = SkewClock()
        self.engines: dict[str, Engine] = {}
        self.parts: list[Components] = []

    def components(self, name: str) -> Components:
        settings = load_settings(
            {
                "AUTOSRE_DATA_DIR": str(self.tmp_path / name),
                "AUTOSRE_DATABASE_URL": self.url,
                "AUTOSRE_POLICY": str(self.tmp_path / "policy.yaml"),
                "AUTOSRE_INVENTORY": str(self.tmp_path / "inventory.yml"),
                "AUTOSRE_PLAYBOOK_DIR": str(self.tmp_path / "playbooks"),
                "AUTOSRE_REPLICA_ID": name,
                "AUTOSRE_LEASE_TTL": f"{TTL:g}s",
            }
        )
        part = Components(settings, sessions=open_store(self.url))
        self.parts.append(part)
        return part

    def replica(self, name: str) -> Engine:
        source = ScriptedSource(self.reading, HOSTS)
        engine = Engine(
            self.components(name),
            metrics=source,
            planner=RulesPlanner(),
            clock=self.clock,
            plan_wait=10.0,
        )
        self.engines[name] = engine
        return engine

    def reading(self, host: str, _at: float) -> float | None:
        """A host the playbook ran on is cured: its CPU drops (as nginx's restart does)."""
        return 10.0 if host in self.notes() else self.values[host]

    def tick_until(self, what: str, done: Callable[[], bool], timeout: float = 60.0) -> None:
        """Tick every replica, about 0.2 s apart, until done."""
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            for engine in self.engines.values():
                engine.tick()
            time.sleep(0.2)
            self.clock.advance(1.0)

    def owned(self, name: str) -> frozenset[str]:
        return self.engines[name].takeover.share.hosts()

    def statuses(self) -> dict[str, list[str]]:
        sessions = self.parts[0].sessions
        return {h: [i["status"] for i in list_incidents(sessions, host=h)] for h in HOSTS}

    def notes(self) -> Counter[str]:
        return Counter(self.marks.read_text().split()) if self.marks.exists() else Counter()

    def close(self) -> None:
        for engine in self.engines.values():
            engine.shutdown()
        for part in self.parts:
            part.close()


@pytest.fixture
def store(postgres_template: str) -> Iterator[str]:
    with own_database(postgres_template, "replicas") as url:
        yield url


def _split(fleet: Fleet, names: list[str]) -> None:
    fleet.tick_until(
        "the fleet split evenly",
        lambda: (
            sorted(len(fleet.owned(n)) for n in names) == [len(HOSTS) // len(names)] * len(names)
            and frozenset().union(*(fleet.owned(n) for n in names)) == frozenset(HOSTS)
        ),
    )


@pytest.mark.parametrize("replicas", [2, 3])
def test_replicas_split_the_fleet_and_each_host_is_remediated_once(
    tmp_path: Path, store: str, replicas: int
) -> None:
    fleet = Fleet(tmp_path, store)
    names = [f"r{n}" for n in range(replicas)]
    try:
        for name in names:
            fleet.replica(name)
        _split(fleet, names)
        share = {name: fleet.owned(name) for name in names}
        fleet.values.update(dict.fromkeys(HOSTS, 97.0))
        fleet.tick_until(
            "every incident resolved",
            lambda: all(s == ["resolved"] for s in fleet.statuses().values()),
        )
        assert fleet.notes() == Counter(HOSTS)  # one run on each host, none twice
        runs = list_runs(fleet.parts[0].sessions)
        assert sorted(h for run in runs for h in run["hosts"]) == sorted(HOSTS)
        # Each run was started by the replica holding its hosts (no run spans two shares).
        for run in runs:
            assert any(set(run["hosts"]) <= share[name] for name in names), run
    finally:
        fleet.close()


def test_a_run_by_hand_takes_the_same_lease_as_the_replicas(tmp_path: Path, store: str) -> None:
    fleet = Fleet(tmp_path, store, nap=3.0)
    try:
        engine = fleet.replica("r0")
        _split(fleet, ["r0"])
        fleet.values["web1"] = 97.0
        engine.tick()  # its run on web1 starts: it holds web1's run lease for 3 s
        ui = fleet.components("ui")  # another process: the web UI's by-hand runs
        with pytest.raises(HostBusyError) as busy:
            run_by_hand(
                ui, action="note", hosts=["web1"], extra_vars={}, check=False, requested_by="ann"
            )
        assert "engine run" in str(busy.value)
        assert engine.wait_idle(60)
        assert fleet.notes() == Counter(["web1"])  # the refused run never started
    finally:
        fleet.close()


def test_a_replica_that_stops_renewing_has_its_incident_taken_over_not_re_run(
    tmp_path: Path, store: str
) -> None:
    fleet = Fleet(tmp_path, store)
    try:
        first, second = fleet.replica("r0"), fleet.replica("r1")
        _split(fleet, ["r0", "r1"])
        host = sorted(fleet.owned("r1"))[0]
        fleet.values[host] = 97.0
        first.tick()
        second.tick()  # r1 opens the incident and runs the playbook on its host
        assert second.wait_idle(60)
        assert fleet.notes() == Counter([host])  # cured: verification will say so
        # r1 stops here, between its run's end and its verification: no more ticks, no
        # more heartbeats (its threads stop), nothing handed back.
        del fleet.engines["r1"]
        assert isinstance(second.takeover.share, LeasedShare)
        second.takeover.share._stop.set()
        second.components.locks.close()  # type: ignore[attr-defined]
        started = time.monotonic()
        fleet.tick_until("r0 holds every host", lambda: fleet.owned("r0") == frozenset(HOSTS))
        assert time.monotonic() - started >= TTL * 0.8  # not before r1's leases lapsed
        fleet.tick_until("the incident resolved", lambda: fleet.statuses()[host] == ["resolved"])
        assert fleet.notes() == Counter([host])  # verified, never run again
        second.shutdown()
    finally:
        fleet.close()
