"""A wave: 200 inventory hosts saturated in the same tick, policy ``max_concurrent: 5``.
The gate counts incidents already remediating, 0 for every host decided in that tick, so
the launch must hold the line: at most 5 hosts acted on, the other 195 told why they wait.
bench/waves.py runs the same wave and reports it beside its timings."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from engine.components import Components
from engine.loop import Engine
from engine.plan.rules import RulesPlanner
from engine.settings import load_settings
from engine.store import open_store
from tests.fixtures.reads import incident_detail, list_incidents, list_runs
from tests.fixtures.scripted import ScriptedSource, SkewClock
from tests.fixtures.store import migrated_sqlite

OK = (
    "- name: Succeed\n  hosts: all\n  gather_facts: false\n  tasks:\n"
    "    - name: Say ok\n      ansible.builtin.debug:\n        msg: ok\n"
)
POLICY = """
detection:
  high_cpu: {trigger: 80, clear: 50, window: 1s, sustain: 0s, step: 1s, stale_after: 3s}
actions:
  fix: {playbook: ok.yml, description: the only rung, timeout: 60s}
trust: {actions: {fix: auto}}
remediation:
  ladder: [fix]
  cooldown: 1h
  max_attempts: 1
  max_concurrent: LIMIT
  verify_timeout: 20s
  approval_timeout: 3s
"""


@dataclass(frozen=True)
class Wave:
    """What one tick did with a wave of saturated hosts."""

    hosts: int
    max_concurrent: int
    acted_on: tuple[str, ...]  # the hosts of every run the tick started
    waiting: int  # hosts told they wait for a slot
    tick_seconds: float


def decide_wave(workdir: Path, *, hosts: int = 200, max_concurrent: int = 5) -> Wave:
    """One engine tick over ``hosts`` hosts all at 95 % CPU; its runs waited for."""
    names = tuple(f"web{i:04d}" for i in range(hosts))
    books = workdir / "playbooks"
    books.mkdir(parents=True)
    (books / "ok.yml").write_text(OK)
    policy = workdir / "policy.yaml"
    policy.write_text(POLICY.replace("LIMIT", str(max_concurrent)))
    inventory = workdir / "hosts"
    inventory.write_text("".join(f"{n} ansible_connection=local\n" for n in names))
    settings = load_settings(
        {
            "AUTOSRE_DATA_DIR": str(workdir / "data"),
            "AUTOSRE_POLICY": str(policy),
            "AUTOSRE_INVENTORY": str(inventory),
            "AUTOSRE_PLAYBOOK_DIR": str(books),
        }
    )
    sessions = open_store(migrated_sqlite(workdir / "autosre.db"))
    components = Components(settings, sessions=sessions)
    engine = Engine(
        components,
        metrics=ScriptedSource(lambda _host, _t: 95.0, names),
        planner=RulesPlanner(),
        clock=SkewClock(),
        plan_wait=30.0,  # every proposal of the wave lands in this one tick
    )
    try:
        started = time.monotonic()
        engine.tick()
        seconds = time.monotonic() - started
        assert engine.wait_idle(120), "the wave's run did not end"
        acted = tuple(h for run in list_runs(sessions, limit=1000) for h in run["hosts"])
        waiting = 0
        for incident in list_incidents(sessions, limit=1000):
            detail = incident_detail(sessions, incident["id"]) or {"timeline": []}
            events = detail["timeline"]
            waiting += any(
                e["kind"] == "waiting" and "max_concurrent" in e["message"] for e in events
            )
    finally:
        engine.shutdown()
    return Wave(hosts, max_concurrent, acted, waiting, seconds)


def test_a_wave_of_200_decided_in_one_tick_acts_on_at_most_max_concurrent(
    tmp_path: Path,
) -> None:
    wave = decide_wave(tmp_path, hosts=200, max_concurrent=5)
    assert len(wave.acted_on) == len(set(wave.acted_on)) == 5
    assert wave.waiting == 195
