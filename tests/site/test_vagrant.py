"""vagrant/Vagrantfile: Vagrant accepts it (`vagrant validate`, providers ignored: no VM
runs here), its fleet follows AUTOSRE_WEB_VMS, and its provisioning inventory has the
groups and addresses playbooks/site.yml and the monitor's engine expect."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import yaml

from tests.site.conftest import ROOT, run, tool

VAGRANT = ROOT / "vagrant"


def vagrant_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """Vagrant's environment, its state under tmp_path (nothing written to the checkout)."""
    return {
        "PATH": os.defpath,
        "HOME": str(tmp_path),
        "VAGRANT_HOME": str(tmp_path / "vagrant.d"),
        "VAGRANT_DOTFILE_PATH": str(tmp_path / "dot-vagrant"),
        "VAGRANT_CHECKPOINT_DISABLE": "1",
        **extra,
    }


def fleet(tmp_path: Path, web_vms: str | None) -> Any:
    """What vagrant/fleet.rb makes of AUTOSRE_WEB_VMS (unset when None), as JSON."""
    env = {"PATH": os.defpath, "HOME": str(tmp_path)}
    if web_vms is not None:
        env["AUTOSRE_WEB_VMS"] = web_vms
    script = "puts AutoSREFleet.to_json(AutoSREFleet.web_count)"
    done = run([tool("ruby"), "-r", "./fleet", "-e", script], env=env, cwd=VAGRANT)
    return json.loads(done.stdout) if done.returncode == 0 else done.stderr


def test_the_vagrantfile_validates_for_one_and_for_three_web_vms(tmp_path: Path) -> None:
    for path in (VAGRANT / "Vagrantfile", VAGRANT / "fleet.rb"):
        checked = run([tool("ruby"), "-c", str(path)])
        assert checked.returncode == 0, checked.stderr
    for count in ("1", "3"):
        env = vagrant_env(tmp_path, AUTOSRE_WEB_VMS=count)
        done = run([tool("vagrant"), "validate", "--ignore-provider"], env=env, cwd=VAGRANT)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Vagrantfile validated successfully" in done.stdout
        machines = re.findall(r"==> (\w+): Ignoring provider config", done.stdout)
        assert machines == [f"web{n}" for n in range(1, int(count) + 1)] + ["monitor"]
    assert not (VAGRANT / ".vagrant").exists()


def test_vagrant_refuses_a_bad_count_naming_the_variable(tmp_path: Path) -> None:
    env = vagrant_env(tmp_path, AUTOSRE_WEB_VMS="0")
    done = run([tool("vagrant"), "validate", "--ignore-provider"], env=env, cwd=VAGRANT)
    assert done.returncode != 0
    assert "AUTOSRE_WEB_VMS must be a whole number from 1 to 20" in done.stdout + done.stderr


def test_the_fleet_follows_the_variable(tmp_path: Path) -> None:
    three = fleet(tmp_path, "3")
    names = ["web1", "web2", "web3"]
    assert [vm["name"] for vm in three["web_vms"]] == names
    assert three["groups"] == {"web": names, "monitor": ["monitor"]}
    addresses = {vm["name"]: vm["ip"] for vm in [*three["web_vms"], three["monitor"]]}
    assert len(set(addresses.values())) == 4  # one address each
    assert three["host_vars"] == {n: {"autosre_address": a} for n, a in addresses.items()}
    assert [vm["name"] for vm in fleet(tmp_path, None)["web_vms"]] == ["web1", "web2"]
    for bad in ("0", "21", "-1", "2x", "", "1e3"):
        assert "AUTOSRE_WEB_VMS must be a whole number" in fleet(tmp_path, bad), bad


def test_the_provisioner_runs_the_site_playbook_on_groups_it_plays(tmp_path: Path) -> None:
    text = (VAGRANT / "Vagrantfile").read_text()
    playbook = re.search(r'ansible\.playbook = "([^"]+)"', text)
    assert playbook
    site = (VAGRANT / playbook[1]).resolve()
    assert site == ROOT / "playbooks" / "site.yml"
    assert 'ansible.limit = "all"' in text  # one run for every VM, after the last is up
    plays = {play["hosts"] for play in yaml.safe_load(site.read_text())}
    assert plays == set(fleet(tmp_path, "2")["groups"])
    # The monitor installs AutoSRE from the checkout the Vagrantfile syncs to it.
    source = yaml.safe_load((ROOT / "playbooks/roles/autosre/defaults/main.yml").read_text())
    assert f'"..", "{source["autosre_source_dir"]}"' in text
