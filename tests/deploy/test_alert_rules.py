"""The shipped self-watch alert rules (examples/prometheus/autosre-alerts.yml): promtool
checks them, runs their unit tests (the stalled engine fires, a ticking one does not), and
every metric they read is one the web UI's /metrics exports."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from tests.deploy.conftest import ROOT, run, tool
from tests.docs.guide import anchors
from webui.heartbeat_metrics import BEATS

RULES = ROOT / "examples" / "prometheus" / "autosre-alerts.yml"
UNIT_TESTS = ROOT / "examples" / "prometheus" / "autosre-alerts.test.yml"
TROUBLESHOOTING = ROOT / "docs" / "troubleshooting.md"
EXPORTERS = [ROOT / "webui" / "health.py", ROOT / "webui" / "heartbeat_metrics.py"]


def rules() -> list[dict[str, object]]:
    loaded = yaml.safe_load(RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def test_promtool_checks_the_rules() -> None:
    done = run([tool("promtool"), "check", "rules", str(RULES)])
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS: 6 rules found" in done.stdout


def test_promtool_unit_tests_pass_and_cover_the_stalled_engine() -> None:
    """The unit tests expect AutoSREEngineStalled silent while ticks advance and at its
    first late minute (pending), then firing; firing too when no engine ever ticked."""
    cases = yaml.safe_load(UNIT_TESTS.read_text())["tests"]
    stalled = [
        check
        for case in cases
        for check in case["alert_rule_test"]
        if check["alertname"] == "AutoSREEngineStalled"
    ]
    assert [bool(check["exp_alerts"]) for check in stalled] == [False] * 3 + [True, False, True]
    done = run([tool("promtool"), "test", "rules", str(UNIT_TESTS)], cwd=UNIT_TESTS.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "SUCCESS" in done.stdout


def test_promtool_fails_a_wrong_expectation(tmp_path: Path) -> None:
    """The unit test has teeth: expecting the stall alert while the engine still ticks fails."""
    broken = UNIT_TESTS.read_text().replace(
        "      - eval_time: 5m\n        alertname: AutoSREEngineStalled\n        exp_alerts: []",
        "      - eval_time: 5m\n        alertname: AutoSREEngineStalled\n"
        "        exp_alerts:\n          - exp_labels: {severity: critical}",
        1,
    )
    assert broken != UNIT_TESTS.read_text()
    (tmp_path / "autosre-alerts.yml").write_text(RULES.read_text())
    (tmp_path / "t.yml").write_text(broken)
    done = run([tool("promtool"), "test", "rules", "t.yml"], cwd=tmp_path)
    assert done.returncode != 0


def test_every_metric_read_is_exported_and_every_runbook_section_exists() -> None:
    written = "\n".join(path.read_text() for path in EXPORTERS)
    exported = set(re.findall(r'"(autosre_[a-z_]+)"', written)) | {
        f"autosre_engine_{part}_timestamp_seconds" for part, _ in BEATS.values()
    }
    sections = anchors(TROUBLESHOOTING)
    for rule in rules():
        for metric in set(re.findall(r"\bautosre_[a-z_]+", str(rule["expr"]))):
            family = metric.removesuffix("_total")
            assert family in exported, f"{rule['alert']} reads {metric}, which nobody exports"
        annotations = rule["annotations"]
        assert isinstance(annotations, dict)
        anchor = str(annotations["runbook_url"]).partition("#")[2]
        assert anchor in sections, f"{rule['alert']}: no section #{anchor} in troubleshooting.md"
