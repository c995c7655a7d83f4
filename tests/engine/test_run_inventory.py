"""A run's minimal inventory: the real executor and ansible-playbook see the same vars for
each host as with the full inventory (group and host vars, vars trees, group precedence,
connection vars), and the full inventory is kept wherever that could not hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.execute.results import read_events
from engine.execute.run_inventory import RunInventories, playbook_stays_home
from engine.execute.runner import AnsibleRunnerExecutor
from engine.types import RunRequest

INVENTORY = """\
localhost ansible_connection=local
[web]
web1 ansible_host=10.0.0.1 port=22 flag=yes
web2 ansible_host=10.0.0.2 ansible_connection=ssh
[db]
db1 ansible_user=dba
[app:children]
web
[web:vars]
foo=web_file
tier=front
[db:vars]
ansible_group_priority=10
foo=db_file
[extra]
web2 ansible_user=deploy
[all:vars]
bar=all_file
"""
# group_vars/app.yml beats [web:vars] although web is the deeper group: a vars tree ranks
# above any inventory file's group vars. A minimal inventory that merged them would lose it.
VARS_TREES = {
    "group_vars/app.yml": "foo: from_app_tree\n",
    "group_vars/all.yml": "tier: all_tree\nshared: [1, 2]\n",
    "host_vars/web1.yml": "baz: host_tree\n",
}
DUMP = """\
- name: Dump
  hosts: all
  gather_facts: false
  tasks:
    - name: Every var
      ansible.builtin.debug:
        var: vars
"""
# Where the inventory lies, which the minimal one cannot hide.
LOCATION = {"inventory_dir", "inventory_file", "ansible_inventory_sources", "hostvars"}


@pytest.fixture
def fleet(tmp_path: Path) -> Path:
    """An INI inventory with vars trees beside it; its playbooks live elsewhere."""
    inventory = tmp_path / "fleet" / "hosts"
    inventory.parent.mkdir()
    inventory.write_text(INVENTORY)
    for name, text in VARS_TREES.items():
        (inventory.parent / name).parent.mkdir(exist_ok=True)
        (inventory.parent / name).write_text(text)
    (tmp_path / "books").mkdir()
    (tmp_path / "books" / "dump.yml").write_text(DUMP)
    return inventory


def vars_seen(tmp_path: Path, inventory: Path, min_hosts: int, ident: str) -> dict[str, Any]:
    """Each host's vars as its run's debug task printed them."""
    executor = AnsibleRunnerExecutor(
        runs_dir=tmp_path / "runs",
        inventory_path=inventory,
        scratch_dir=tmp_path / "scratch",
        run_inventories=RunInventories(inventory, min_hosts=min_hosts),
    )
    playbook = str(tmp_path / "books" / "dump.yml")
    hosts = ("web1", "web2", "db1")
    result = executor.run(RunRequest("dump", playbook, hosts), ident=ident)
    assert result.status == "successful", result.error
    assert not (tmp_path / "scratch" / ident).exists()  # the minimal inventory went with it
    assert all((inventory.parent / name).is_file() for name in VARS_TREES)  # links, not trees
    events = read_events(Path(result.artifact_dir))
    found = {
        e["event_data"]["host"]: e["event_data"]["res"]["vars"]
        for e in events
        if e.get("event") == "runner_on_ok"
    }
    assert sorted(found) == sorted(hosts)
    return found


def test_a_minimal_inventory_gives_each_host_the_same_vars(tmp_path: Path, fleet: Path) -> None:
    full = vars_seen(tmp_path, fleet, min_hosts=10**9, ident="full")
    minimal = vars_seen(tmp_path, fleet, min_hosts=1, ident="minimal")
    for host, seen in full.items():
        assert minimal[host]["inventory_file"].endswith("/inventory/hosts.yml")
        assert seen["inventory_file"] == str(fleet)
        same = {k: v for k, v in seen.items() if k not in LOCATION}
        assert {k: v for k, v in minimal[host].items() if k not in LOCATION} == same
    assert full["web1"]["foo"] == "from_app_tree"
    assert full["web1"]["baz"] == "host_tree" and full["web1"]["port"] == 22
    assert full["web2"]["ansible_user"] == "deploy"
    assert full["web2"]["ansible_connection"] == "ssh"
    assert full["db1"]["foo"] == "db_file" and full["db1"]["tier"] == "all_tree"


def test_the_minimal_inventory_is_private_and_holds_only_the_targets(
    tmp_path: Path, fleet: Path
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir(mode=0o700)
    written = RunInventories(fleet, min_hosts=1).write(
        tmp_path / "books" / "dump.yml", ("web1",), scratch
    )
    assert written is not None
    assert written.stat().st_mode & 0o777 == 0o600
    text = written.read_text()
    assert "web1" in text and "localhost" in text  # for delegate_to: localhost
    assert "web2" not in text and "db1" not in text
    assert (written.parent / "group_vars").resolve() == (fleet.parent / "group_vars").resolve()


@pytest.mark.parametrize(
    "task",
    [
        "ansible.builtin.debug: {msg: \"{{ groups['web'] }}\"}",
        "ansible.builtin.debug: {msg: \"{{ hostvars['db1'].foo }}\"}",
        'ansible.builtin.debug: {msg: "{{ inventory_dir }}"}',
        "ansible.builtin.import_tasks: more.yml",
        "ansible.builtin.debug: {msg: hi}\n      delegate_to: db1",
    ],
)
def test_a_playbook_that_looks_past_its_hosts_keeps_the_full_inventory(
    tmp_path: Path, task: str
) -> None:
    book = tmp_path / "book.yml"
    book.write_text(f"- hosts: all\n  tasks:\n    - {task}\n")
    assert not playbook_stays_home(book)
    book.write_text("- hosts: all\n  tasks:\n    - command: id\n      delegate_to: localhost\n")
    assert playbook_stays_home(book)
    (tmp_path / "group_vars").mkdir()  # playbook vars trees rank between the inventory's
    assert not playbook_stays_home(book)


def full_inventory_kept(tmp_path: Path, inventory: Path, min_hosts: int = 1) -> bool:
    scratch = tmp_path / "scratch"
    scratch.mkdir(mode=0o700, exist_ok=True)
    book = tmp_path / "books" / "dump.yml"
    return RunInventories(inventory, min_hosts=min_hosts).write(book, ("web1",), scratch) is None


def test_small_dynamic_tagged_or_unknown_keeps_the_full_inventory(
    tmp_path: Path, fleet: Path
) -> None:
    assert full_inventory_kept(tmp_path, fleet, min_hosts=1000)  # nothing to win
    script = tmp_path / "script.py"
    script.write_text('#!/bin/sh\necho \'{"web": {"hosts": ["web1"]}}\'\n')
    script.chmod(0o700)
    assert full_inventory_kept(tmp_path, script)  # answers anew on each run
    plugin = tmp_path / "plugin.yml"
    plugin.write_text("plugin: ansible.builtin.constructed\n")
    assert full_inventory_kept(tmp_path, plugin)
    tagged = tmp_path / "tagged.yml"
    tagged.write_text("all:\n  hosts:\n    web1: {cmd: !unsafe '{{ no }}'}\n")
    assert full_inventory_kept(tmp_path, tagged)  # JSON would drop the tag
    other = tmp_path / "other.ini"
    other.write_text("web9\n")
    assert full_inventory_kept(tmp_path, other)  # web1 is not there: Ansible says so
    assert not full_inventory_kept(tmp_path, fleet)


def test_an_inventory_edit_is_seen_by_the_next_run(tmp_path: Path, fleet: Path) -> None:
    inventories = RunInventories(fleet, min_hosts=1)
    book = tmp_path / "books" / "dump.yml"
    for number, address in enumerate(["10.0.0.1", "10.9.9.9"]):
        fleet.write_text(INVENTORY.replace("10.0.0.1", address))
        scratch = tmp_path / f"scratch{number}"
        scratch.mkdir(mode=0o700)
        written = inventories.write(book, ("web1",), scratch)
        assert written is not None and address in written.read_text()
