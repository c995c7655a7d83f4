"""A host Ansible cannot reach: escalated at once with Ansible's own message, its batch
mates unaffected, and no other rung tried on it."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.engine import test_loop
from tests.engine.test_loop import Lab
from tests.fixtures.prometheus import free_port
from tests.fixtures.reads import incident_detail, list_runs

SLOW = (
    "- name: Take a while\n  hosts: all\n  gather_facts: false\n  tasks:\n"
    "    - name: Work for a while\n      ansible.builtin.command: sleep 12\n"
    "      changed_when: true\n"
)


def test_an_unreachable_host_escalates_at_once_and_its_batch_goes_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = free_port()  # nothing listens there: ssh is refused at once
    local = 'ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"'
    inventory = (
        "all:\n  hosts:\n"
        f"    web1: {{{local}}}\n"
        f"    web2: {{ansible_host: 127.0.0.1, ansible_port: {closed}, ansible_user: nobody}}\n"
        f"    web3: {{{local}}}\n"
    )
    monkeypatch.setitem(test_loop.PLAYBOOKS, "slow.yml", SLOW)
    lab = Lab(tmp_path, first="slow.yml", inventory=inventory)
    engine = lab.engine()
    try:
        lab.values.update(web1=95.0, web2=96.0)
        engine.tick()
        (run,) = list_runs(lab.sessions)
        assert sorted(run["hosts"]) == ["web1", "web2"]
        started = time.monotonic()
        deadline = started + 10
        while lab.status("web2") != "failed" and time.monotonic() < deadline:
            lab.clock.advance(1.0)
            engine.tick()
            time.sleep(0.2)
        assert lab.status("web2") == "failed"
        # Told within seconds, while web1's part of the same run is still working.
        assert time.monotonic() - started < 10
        assert lab.status("web1") == "remediating"
        incident = incident_detail(lab.sessions, lab.incidents("web2")[0]["id"])
        assert incident["summary"].startswith("first_fix could not reach web2: unreachable at task")
        assert "Connection refused" in incident["summary"]
        assert "the ladder stops here" in incident["summary"]
        # No second rung, ever, on the host nothing can reach.
        assert engine.wait_idle(60)
        lab.values.update(web1=10.0)
        lab.tick_until(engine, "web1 resolved", lambda: lab.status("web1") == "resolved")
        assert len(list_runs(lab.sessions)) == 1
        assert [d["action"] for d in incident["decisions"]] == ["first_fix"]
        ended = [e["message"] for e in incident_detail(lab.sessions, incident["id"])["timeline"]]
        told = [m for m in ended if m.startswith("first_fix failed on web2")]
        assert told and all("Connection refused" in m for m in told)
    finally:
        engine.shutdown()
