"""playbooks/site.yml as Ansible and the engine see it: it parses, the engine will never
run it (it is in no policy's whitelist), and the monitor's roles render configs that
Prometheus's, Alertmanager's and Ansible's own tools accept, for the hosts of the play."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path

import yaml

from tests.fixtures.store import migrated_sqlite
from tests.site.conftest import ROOT, run, tool

PLAYBOOKS = ROOT / "playbooks"
ROLES = PLAYBOOKS / "roles"
# The inventory Vagrant writes for AUTOSRE_WEB_VMS=3 (vagrant/fleet.rb: groups, host_vars).
FLEET_INVENTORY = """\
web1 ansible_host=127.0.0.1 ansible_port=2200 autosre_address=192.168.56.11
web2 ansible_host=127.0.0.1 ansible_port=2201 autosre_address=192.168.56.12
web3 ansible_host=127.0.0.1 ansible_port=2202 autosre_address=192.168.56.13
monitor ansible_connection=local autosre_address=192.168.56.10

[web]
web1
web2
web3

[monitor]
monitor
"""
# Render the monitor's templates with their roles' defaults, on the controller only.
RENDER = """\
- name: Render the monitor's configs
  hosts: monitor
  gather_facts: false
  vars:
    out: "{out}"
  tasks:
    - name: Load the roles' defaults
      ansible.builtin.include_vars:
        file: "{roles}/{{{{ item }}}}/defaults/main.yml"
      loop: [prometheus, alertmanager, autosre]
    - name: Render
      ansible.builtin.template:
        src: "{roles}/{{{{ item.role }}}}/templates/{{{{ item.name }}}}.j2"
        dest: "{{{{ out }}}}/{{{{ item.name }}}}"
        mode: "0600"
      loop:
        - {{role: prometheus, name: prometheus.yml}}
        - {{role: alertmanager, name: alertmanager.yml}}
        - {{role: autosre, name: inventory.ini}}
        - {{role: autosre, name: autosre.env}}
"""


def ansible_env(tmp_path: Path) -> dict[str, str]:
    """Ansible's environment for a run that writes only under tmp_path."""
    return {
        "PATH": f"{Path(sys.executable).parent}:{os.defpath}",
        "HOME": str(tmp_path),
        "ANSIBLE_NOCOLOR": "1",
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
    }


def test_site_passes_ansible_syntax_check(tmp_path: Path) -> None:
    inventory = tmp_path / "fleet.ini"
    inventory.write_text(FLEET_INVENTORY)
    done = run(
        [
            tool("ansible-playbook"),
            "-i",
            str(inventory),
            "--syntax-check",
            str(PLAYBOOKS / "site.yml"),
        ],
        env=ansible_env(tmp_path),
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_no_shipped_policy_whitelists_the_site_playbook_or_a_role() -> None:
    for policy in sorted((ROOT / "policies").glob("*.yaml")):
        actions = yaml.safe_load(policy.read_text())["actions"]
        playbooks = {action["playbook"] for action in actions.values()}
        assert playbooks, policy
        assert not {p for p in playbooks if p == "site.yml" or p.startswith("roles")}, policy


def test_the_engine_refuses_to_run_the_site_playbook(tmp_path: Path) -> None:
    migrated_sqlite(tmp_path / "data" / "autosre.db")
    env = {
        "PATH": os.defpath,
        "HOME": str(tmp_path),
        "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
        "AUTOSRE_POLICY": str(ROOT / "policies" / "default.yaml"),
        "AUTOSRE_PLAYBOOK_DIR": str(PLAYBOOKS),
        "AUTOSRE_INVENTORY": str(ROOT / "inventory" / "localhost.yml"),
    }
    argv = [tool("autosre"), "playbook", "run", "site", "--limit", "localhost", "--check"]
    done = run(argv, env=env, cwd=tmp_path)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "'site' is not a whitelisted action" in done.stderr
    assert not (tmp_path / "data" / "runs").exists()  # refused before anything ran


def test_monitor_configs_render_for_the_fleet_and_pass_their_checks(tmp_path: Path) -> None:
    (tmp_path / "fleet.ini").write_text(FLEET_INVENTORY)
    (tmp_path / "render.yml").write_text(RENDER.format(out=tmp_path, roles=ROLES))
    done = run(
        [tool("ansible-playbook"), "-i", str(tmp_path / "fleet.ini"), str(tmp_path / "render.yml")],
        env=ansible_env(tmp_path),
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr

    # Prometheus scrapes each web VM's node_exporter and probes its nginx, at its address.
    prometheus = tmp_path / "prometheus.yml"
    checked = run([tool("promtool"), "check", "config", "--syntax-only", str(prometheus)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    jobs = {
        job["job_name"]: job for job in yaml.safe_load(prometheus.read_text())["scrape_configs"]
    }
    addresses = [f"192.168.56.1{n}" for n in (1, 2, 3)]
    assert jobs["node"]["static_configs"][0]["targets"] == [f"{a}:9100" for a in addresses]
    assert jobs["nginx"]["static_configs"][0]["targets"] == [f"{a}:80" for a in addresses]
    checked = run(
        [tool("promtool"), "check", "rules", str(ROOT / "examples/prometheus/alert-rules.yml")]
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr

    # Alertmanager's config passes amtool, the token in a file of its own.
    alertmanager = tmp_path / "alertmanager.yml"
    checked = run([tool("amtool"), "check-config", str(alertmanager)])
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "credentials_file: /etc/prometheus/autosre-alerts-token" in alertmanager.read_text()

    # The engine's inventory lists the web VMs by their private addresses, as Ansible reads it.
    listed = run(
        [tool("ansible-inventory"), "-i", str(tmp_path / "inventory.ini"), "--list"],
        env=ansible_env(tmp_path),
    )
    assert listed.returncode == 0, listed.stderr
    data = json.loads(listed.stdout)
    assert data["web"]["hosts"] == ["web1", "web2", "web3"]
    hostvars = data["_meta"]["hostvars"]
    assert [hostvars[h]["ansible_host"] for h in ("web1", "web2", "web3")] == addresses
    assert hostvars["web1"]["ansible_user"] == "autosre"
    assert "StrictHostKeyChecking=yes" in hostvars["web1"]["ansible_ssh_common_args"]
    assert "monitor" not in hostvars

    # The environment names every setting the engine needs, and no secret.
    env = dict(
        line.split("=", 1)
        for line in (tmp_path / "autosre.env").read_text().splitlines()
        if line and not line.startswith("#")
    )
    assert env["AUTOSRE_INVENTORY"] == "/etc/autosre/inventory.ini"
    assert env["AUTOSRE_ALERTS_TOKEN_FILE"] == "/etc/autosre/alerts-token"
    assert "AUTOSRE_ALERTS_TOKEN" not in env
    assert env["PATH"].startswith("/opt/autosre/venv/bin:")  # ansible-playbook for the runs


def test_the_chaos_role_copies_all_the_burner_needs(tmp_path: Path) -> None:
    """The demo hosts' `autosre-chaos` runs on Debian's python3 alone, from the modules the
    autosre_chaos role copies: no other module of the project, no third-party package."""
    tasks = yaml.safe_load((ROLES / "autosre_chaos/tasks/main.yml").read_text())
    copied = next(t["loop"] for t in tasks if "ansible.builtin.copy" in t)
    for name in copied:
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / name, tmp_path / name)
    script = (ROLES / "autosre_chaos/templates/autosre-chaos.j2").read_text()
    assert "{{" not in script and "{%" not in script  # rendered as is
    script = script.replace('"/opt/autosre-chaos"', repr(str(tmp_path)))
    (tmp_path / "autosre-chaos").write_text(script)
    argv = ["/usr/bin/python3", "-I", str(tmp_path / "autosre-chaos"), "--help"]
    done = run(argv, cwd=tmp_path, env={"PATH": os.defpath})
    assert done.returncode == 0, done.stderr
    assert "burn every core until nginx restarts" in done.stdout
    # What the burner imports from the project is exactly what the role copies.
    check = (
        "import sys; sys.path.insert(0, sys.argv[1]); import autosre.chaos; "
        "print(' '.join(sorted(str(m.__file__) for m in list(sys.modules.values()) "
        "if str(getattr(m, '__file__', '')).startswith(sys.argv[1]))))"
    )
    argv = ["/usr/bin/python3", "-I", "-c", check, str(tmp_path)]
    done = run(argv, cwd="/", env={"PATH": os.defpath})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == sorted(str(tmp_path / name) for name in copied)
