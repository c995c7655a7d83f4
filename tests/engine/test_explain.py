"""``autosre incidents explain ID``: an incident a real engine tick recorded, replayed
through today's policy and planner (nothing run, nothing written): the old decision beside
the new one with its reason once the policy changed; bad ids exit 2, never a traceback."""

from __future__ import annotations

import pytest
import yaml

from autosre.cli import main
from tests.engine.test_eval_capture import recorded  # noqa: F401 - a fixture, shared
from tests.engine.test_loop import Lab


def test_explain_shows_then_and_now_after_a_policy_change(
    recorded: tuple[Lab, int],  # noqa: F811 - the fixture imported above
    capsys: pytest.CaptureFixture[str],
) -> None:
    lab, incident = recorded
    assert main(["incidents", "explain", str(incident)]) == 0
    same = capsys.readouterr().out
    assert "then: rules proposed first_fix" in same
    assert "now:  rules proposes first_fix" in same
    assert "same decision" in same and "nothing was run" in same

    # Today's policy no longer whitelists first_fix: the ladder starts at second_fix.
    policy = yaml.safe_load(lab.settings.policy.read_text())
    del policy["actions"]["first_fix"]
    policy["remediation"]["ladder"] = ["second_fix"]
    for levels in (policy.get("trust") or {}).values():  # trust levels, where the policy has them
        levels.pop("first_fix", None)
    changed = yaml.safe_dump(policy)
    assert "first_fix" not in changed
    lab.settings.policy.write_text(changed)
    assert main(["incidents", "explain", str(incident)]) == 0
    now = capsys.readouterr().out
    assert "then: rules proposed first_fix (0.90); the policy: " in now
    assert "now:  rules proposes second_fix" in now
    assert "second_fix is whitelisted" in now or "second_fix is at trust level" in now
    assert "CHANGED: first_fix then, second_fix now" in now
    assert len(lab.incidents()) == 1 and len(lab.incidents("web1")) == 1  # nothing new written


BAD_IDS = {
    "999999": "no incident with id 999999",
    "0": "must be 1 or more",
    "-3": "must be 1 or more",
    "web1": "not a whole number",
    "99999999999": "no such id",
}


def test_bad_incident_ids_exit_2(
    recorded: tuple[Lab, int],  # noqa: F811 - the fixture imported above
    capsys: pytest.CaptureFixture[str],
) -> None:
    for bad, says in BAD_IDS.items():
        for argv in (["incidents", "explain", bad], ["eval", "capture", bad]):
            try:
                status = main(argv)
            except SystemExit as exc:  # argparse refuses what is not an id
                status = int(exc.code or 0)
            assert status == 2, argv
            err = capsys.readouterr().err
            assert says in err and "Traceback" not in err, (argv, err)
