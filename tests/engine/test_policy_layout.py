"""Policy layouts: a section per signal kind (version 2), and version 1 files still read,
named in their own terms when wrong, and rewritten by `autosre policy check --fix`."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from autosre.cli import main
from engine.errors import PolicyError
from engine.policy.layout import upgrade_layout
from engine.policy.load import fix_policy_file, load_policy, parse_policy, policy_layout
from engine.signals import HIGH_CPU, SIGNALS

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"

V1 = """\
# An operator's comment
version: 1
detection:
  high_cpu: {trigger: 90, clear: 40, window: 2s, sustain: 20s, step: 1s}
actions:
  restart_nginx: {playbook: restart_nginx.yml, description: restart, timeout: 1m}
  rollback_nginx: {playbook: rollback_nginx.yml, description: roll back}
remediation:
  ladder: [restart_nginx, rollback_nginx]
  cooldown: 1m
"""


def test_a_version_1_file_reads_as_its_version_2_twin() -> None:
    old = parse_policy(yaml.safe_load(V1))
    twin = upgrade_layout(yaml.safe_load(V1))
    assert twin["version"] == 2 and "detection" not in twin
    assert twin["signals"]["high_cpu"]["ladder"] == ["restart_nginx", "rollback_nginx"]
    assert "ladder" not in twin["remediation"]
    assert parse_policy(twin) == old
    rule = old.signal("high_cpu")
    assert (rule.trigger, rule.clear, rule.sustain) == (90, 40, 20)
    assert rule.query == HIGH_CPU.defaults["query"]  # the kind's default fills in


def test_a_version_1_file_without_detection_watches_cpu_by_default() -> None:
    data = yaml.safe_load(V1)
    del data["detection"]
    policy = parse_policy(data)
    assert list(policy.signals) == ["high_cpu"]
    assert policy.signal("high_cpu").trigger == HIGH_CPU.defaults["trigger"]


def test_errors_in_a_version_1_file_name_its_own_fields() -> None:
    data = yaml.safe_load(V1)
    data["remediation"]["ladder"] = ["reboot"]
    with pytest.raises(PolicyError) as caught:
        parse_policy(data)
    assert caught.value.field == "remediation.ladder"
    data = yaml.safe_load(V1)
    data["detection"]["high_cpu"]["clear"] = 95
    with pytest.raises(PolicyError) as caught:
        parse_policy(data)
    assert caught.value.field == "detection.high_cpu"


def test_an_unknown_signal_kind_is_refused_naming_the_known_ones() -> None:
    data = upgrade_layout(yaml.safe_load(V1))
    data["signals"]["network_saturation"] = data["signals"]["high_cpu"]
    with pytest.raises(PolicyError) as caught:
        parse_policy(data)
    assert caught.value.field == "signals"
    assert "network_saturation" in caught.value.reason and ", ".join(SIGNALS) in caught.value.reason


def test_fix_rewrites_a_version_1_file_once_and_keeps_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(V1, encoding="utf-8")
    before = load_policy(path, playbook_dir=PLAYBOOKS)
    assert policy_layout(path) == 1

    assert fix_policy_file(path) is True

    assert policy_layout(path) == 2
    assert load_policy(path, playbook_dir=PLAYBOOKS) == before
    assert (tmp_path / "policy.yaml.v1").read_text(encoding="utf-8") == V1
    assert yaml.safe_load(path.read_text(encoding="utf-8"))["version"] == 2
    assert fix_policy_file(path) is False  # already current: untouched
    assert not list(tmp_path.glob(".policy.yaml.new"))


def test_fix_never_rewrites_a_broken_file(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    broken = V1.replace("clear: 40", "clear: 99")
    path.write_text(broken, encoding="utf-8")
    with pytest.raises(PolicyError):
        fix_policy_file(path)
    assert path.read_text(encoding="utf-8") == broken
    assert not (tmp_path / "policy.yaml.v1").exists()


def test_policy_check_warns_about_the_old_layout_and_fix_rewrites_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(V1, encoding="utf-8")
    monkeypatch.setenv("AUTOSRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUTOSRE_PLAYBOOK_DIR", str(PLAYBOOKS))

    assert main(["policy", "check", str(path)]) == 0
    out = capsys.readouterr().out
    assert "version 1 layout" in out and "--fix" in out
    assert "high_cpu: above 90% for 20s" in out

    assert main(["policy", "check", "--fix", str(path)]) == 0
    out = capsys.readouterr().out
    assert "rewritten in the current layout" in out
    assert "version 1 layout" not in out
    assert policy_layout(path) == 2


@pytest.mark.parametrize("name", ["default.yaml", "lab.yaml"])
def test_shipped_policies_are_in_the_current_layout(name: str) -> None:
    assert policy_layout(ROOT / "policies" / name) == 2
