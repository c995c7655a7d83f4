"""The shipped recording rules (examples/prometheus/autosre-recording-rules.yml): each
records exactly its kind's query in policies/default.yaml, promtool accepts them, and their
unit tests (Prometheus' own evaluation) give the values the engine would compute."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from engine.policy.load import load_policy
from tests.deploy.conftest import ROOT, run, tool

RULES = ROOT / "examples" / "prometheus" / "autosre-recording-rules.yml"
UNIT_TESTS = ROOT / "examples" / "prometheus" / "autosre-recording-rules.test.yml"
POLICY = ROOT / "policies" / "default.yaml"


def _records() -> dict[str, str]:
    loaded = yaml.safe_load(RULES.read_text())
    return {rule["record"]: rule["expr"] for group in loaded["groups"] for rule in group["rules"]}


def _spaced(expr: str) -> str:
    return re.sub(r"\s+", " ", expr).replace("( ", "(").strip()


def test_each_record_is_its_kinds_query_in_the_default_policy() -> None:
    policy = load_policy(POLICY, playbook_dir=ROOT / "playbooks")
    records = _records()
    kinds = list(policy.signals)
    assert sorted(records) == sorted(f"instance:autosre_{kind}:percent" for kind in kinds)
    for kind in kinds:
        expected = _spaced(policy.signal(kind).promql)
        assert _spaced(records[f"instance:autosre_{kind}:percent"]) == expected, kind


def test_the_group_evaluates_once_a_step() -> None:
    policy = load_policy(POLICY, playbook_dir=ROOT / "playbooks")
    (group,) = yaml.safe_load(RULES.read_text())["groups"]
    steps = {policy.signal(kind).step for kind in ("high_cpu", "disk_full")}
    assert steps == {15.0} and group["interval"] == "15s"


def test_promtool_checks_the_rules_and_their_unit_tests_pass() -> None:
    done = run([tool("promtool"), "check", "rules", str(RULES)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 4 rules found" in done.stdout
    done = run([tool("promtool"), "test", "rules", UNIT_TESTS.name], cwd=UNIT_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize(("old", "new"), [("value: 25", "value: 30"), ("value: 95", "value: 90")])
def test_a_wrong_expectation_fails(tmp_path: Path, old: str, new: str) -> None:
    """The unit tests have teeth: a wrong CPU or disk value fails them."""
    broken = UNIT_TESTS.read_text().replace(old, new, 1)
    assert broken != UNIT_TESTS.read_text()
    (tmp_path / RULES.name).write_text(RULES.read_text())
    (tmp_path / "t.yml").write_text(broken)
    done = run([tool("promtool"), "test", "rules", "t.yml"], cwd=tmp_path)
    assert done.returncode != 0
