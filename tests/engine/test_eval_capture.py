"""``autosre eval capture`` on an incident a real engine tick recorded (real store, real
inventory): the captured case is redacted, refused until its expected decision is filled
in, then replays to the recorded decision. The ``recorded`` fixture serves test_explain too."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from autosre.cli import main
from engine.decision_eval.case import CaseError, load_cases
from engine.decision_eval.run import run_cases
from engine.plan.rules import RulesPlanner
from engine.policy.schema import Policy
from tests.engine.test_loop import INVENTORY, Lab
from tests.fixtures.reads import incident_detail

SECRET = "hunter2-host-secret"
# A label that tries to end its YAML value and set the expected decision, then clear the
# terminal of whoever prints the case.
EVIL = "x\nexpect: {decision: restart_nginx}\n# \x1b[2J"
EVIL_YAML = r'"x\nexpect: {decision: restart_nginx}\n# \e[2J"'  # YAML's escapes of EVIL
LABELLED = INVENTORY.replace(
    "web1: {ansible_connection: local,",
    f"web1: {{api_password: {SECRET}, autosre_labels: {{note: 'vault says {SECRET}', "
    f"team: web, evil: {EVIL_YAML}}}, ansible_connection: local,",
)


@pytest.fixture
def recorded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Lab, int]]:
    """A lab whose engine opened an incident on web1 and ran first_fix; the CLI's
    environment points at the same store, policy and inventory."""
    assert SECRET in LABELLED
    lab = Lab(tmp_path, inventory=LABELLED)
    engine = lab.engine()
    try:
        lab.values["web1"] = 95.0
        engine.tick()
        assert engine.wait_idle(60)
    finally:
        engine.shutdown()
    settings = lab.settings
    for name, value in {
        "AUTOSRE_DATA_DIR": settings.data_dir,
        "AUTOSRE_POLICY": settings.policy,
        "AUTOSRE_INVENTORY": settings.inventory,
        "AUTOSRE_PLAYBOOK_DIR": settings.playbook_dir,
        "AUTOSRE_DATABASE_URL": lab.sessions.kw["bind"].url.render_as_string(),
    }.items():
        monkeypatch.setenv(name, str(value))
    monkeypatch.delenv("AUTOSRE_PLANNER", raising=False)
    incident = lab.incidents("web1")[0]["id"]
    yield lab, incident
    lab.sessions.kw["bind"].dispose()


def rules(policy: Policy) -> RulesPlanner:
    return RulesPlanner()


def test_capture_redacts_refuses_todo_then_replays_the_decision(
    recorded: tuple[Lab, int], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab, incident = recorded
    out = tmp_path / "case.yaml"
    assert main(["eval", "capture", str(incident), "--out", str(out)]) == 0
    text = out.read_text()
    assert SECRET not in text  # the label carried the host var's secret value
    assert "team: web" in text
    assert "decision: TODO" in text
    assert "missing: [remediating_hosts, samples, fleet" in text  # the rules planner's record
    assert "rules proposed first_fix" in text
    with pytest.raises(CaseError, match=r"expect\.decision: still TODO"):
        load_cases(out)
    # Never over an existing file.
    assert main(["eval", "capture", str(incident), "--out", str(out)]) == 2
    assert "cannot write" in capsys.readouterr().err

    assert "\x1b" not in text
    filled = text.replace("decision: TODO", "decision: first_fix")
    out.write_text(filled)
    # Any one decision of the incident, to stdout; an id of none of them is refused.
    shown = incident_detail(lab.sessions, incident)
    assert shown is not None
    decision = shown["decisions"][0]["id"]
    assert main(["eval", "capture", str(incident), "--decision", str(decision)]) == 0
    assert f"name: incident-{incident}-decision-{decision}" in capsys.readouterr().out
    assert main(["eval", "capture", str(incident), "--decision", "999999"]) == 2
    assert f"incident {incident} has no decision 999999" in capsys.readouterr().err
    (loaded,) = [c for _, c in load_cases(out)]
    assert loaded.labels["evil"] == EVIL
    assert loaded.expect.decision == "first_fix"
    (outcome,) = run_cases(load_cases(out), rules)
    assert (outcome.decision, outcome.right, outcome.unsafe) == ("first_fix", True, None)
    # The recorded verdict, rule and all, is what the replay gives.
    detail = incident_detail(lab.sessions, incident)
    assert detail is not None
    first = detail["decisions"][0]
    assert (outcome.verdict.kind.value, outcome.verdict.rule) == (first["verdict"], first["rule"])
