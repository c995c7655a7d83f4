"""The case format: strict validation with errors naming the file, the case and the field;
a captured case refused while its expected decision is TODO; scenarios built into the
engine's own Situation; the verdict-to-decision mapping and the score's numbers."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from engine.decision_eval.build import build_situation, state_of
from engine.decision_eval.case import CaseError, load_cases, parse_case, read_case_file
from engine.decision_eval.policy_ref import PolicyCache
from engine.decision_eval.run import decision_of
from engine.decision_eval.score import percentile
from engine.types import HostStatus, Verdict, VerdictKind

GOOD = """
name: my-case
kind: high_cpu
host: web9
samples: {runs: [[95, 22]]}
expect: {decision: restart_nginx, forbidden: [rollback_nginx]}
"""


def write(tmp_path: Path, text: str, name: str = "case.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("text", "names"),
    [
        (GOOD.replace("host: web9", "host: web9\nsurprise: 1"), "surprise"),
        (GOOD.replace("kind: high_cpu", "kind: high_fever"), "unknown signal kind 'high_fever'"),
        (GOOD.replace("decision: restart_nginx", "decision: TODO"), "expect.decision: still TODO"),
        (GOOD.replace("[rollback_nginx]", "[restart_nginx]"), "both expected and forbidden"),
        (GOOD.replace("samples: {runs: [[95, 22]]}", ""), "give the host's samples, or its state"),
        (GOOD.replace("[[95, 22]]", "[[95, 22]], values: [1]"), "samples: give one of values"),
        (GOOD.replace("name: my-case", "name: Has Spaces"), "name:"),
        ("cases: [{name: x}]", "cases[0]: "),
        ("name: [unclosed", "not valid YAML at line 1"),
    ],
)
def test_bad_case_names_file_and_field(tmp_path: Path, text: str, names: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(CaseError) as caught:
        read_case_file(path)
    message = str(caught.value)
    assert str(path) in message
    assert names in message


def test_todo_marker_in_any_case_is_refused() -> None:
    for marker in ("TODO", "todo: fill me in", "TODO(alice)"):
        with pytest.raises(CaseError, match="still TODO"):
            parse_case(
                {"name": "x", "samples": {"values": [1]}, "expect": {"decision": marker}},
                source="captured.yaml",
            )


def test_names_unique_across_files_and_missing_places_refused(tmp_path: Path) -> None:
    write(tmp_path, GOOD, "a.yaml")
    write(tmp_path, GOOD, "b.yaml")
    with pytest.raises(CaseError, match="'my-case' is already used"):
        load_cases(tmp_path)
    with pytest.raises(CaseError, match="no such file or directory"):
        load_cases(tmp_path / "nowhere")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(CaseError, match=r"no \*\.yaml case files"):
        load_cases(empty)


def test_policy_excerpt_narrows_whitelist_ladder_trust_and_limits(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    case = read_case_file(path)[0]
    narrowed = case.policy.model_copy(
        update={"whitelist": ["rollback_nginx"], "remediation": {"cooldown": "1m"}}
    )
    policy = PolicyCache().get(narrowed, path)
    assert list(policy.actions) == ["rollback_nginx"]
    assert policy.signal("high_cpu").ladder == ["rollback_nginx"]
    assert "disk_full" not in policy.signals  # its only rung was left out
    assert policy.remediation.cooldown == 60.0
    bad = case.policy.model_copy(update={"remediation": {"cooldown": "soon"}})
    with pytest.raises(CaseError, match=r"case\.yaml: policy: .*remediation\.cooldown"):
        PolicyCache().get(bad, path)
    missing = case.policy.model_copy(update={"base": "no-such-policy.yaml"})
    with pytest.raises(CaseError, match="cannot read"):
        PolicyCache().get(missing, path)


def test_samples_are_evaluated_by_the_engine_evaluator(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    case = read_case_file(path)[0]
    policy = PolicyCache().get(case.policy, path)
    assert state_of(case, policy).status is HostStatus.HIGH_CPU
    # 19 samples of a 15 s rate are 285 s: short of the 300 s sustain window.
    assert case.samples is not None
    fewer = case.samples.model_copy(update={"runs": [(95.0, 19)]})
    short = case.model_copy(update={"samples": fewer})
    state = state_of(short, policy)
    assert state.status is HostStatus.NORMAL and state.rising_since is not None
    situation = build_situation(case, policy, incident_id=7)
    assert situation.incident_id == 7
    assert situation.ladder == ("restart_nginx", "rollback_nginx")
    assert "restart_nginx" in situation.actions
    assert len(situation.samples) == 22 and situation.samples[-1].ts == case.now - 5.0


def test_decision_of_every_verdict_kind() -> None:
    def verdict(kind: VerdictKind, action: str | None) -> Verdict:
        return Verdict(kind, action, "why", "rule")

    assert decision_of(verdict(VerdictKind.EXECUTE, "restart_nginx")) == "restart_nginx"
    assert decision_of(verdict(VerdictKind.AWAIT_APPROVAL, "restart_nginx")) == "restart_nginx"
    assert decision_of(verdict(VerdictKind.ESCALATE, "escalate")) == "escalate"
    assert decision_of(verdict(VerdictKind.WAIT, None)) == "do_nothing"
    assert decision_of(verdict(VerdictKind.DO_NOTHING, None)) == "do_nothing"


def test_percentile_nearest_rank() -> None:
    assert percentile([], 50) is None
    assert percentile([3.0, 1.0, 2.0], 50) == 2.0
    assert percentile([float(i) for i in range(1, 101)], 95) == 95.0


def test_hostile_case_files_are_refused_quickly(tmp_path: Path) -> None:
    # A billion-laughs of aliases inside a policy excerpt: shallow types refuse it at once.
    bomb = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for n, prev in zip("bcdefghij", "abcdefghi", strict=True):
        bomb.append(f"{n}: &{n} [{', '.join([f'*{prev}'] * 10)}]")
    text = (
        "\n".join(bomb)
        + "\n"
        + GOOD.replace(
            "kind: high_cpu", "kind: high_cpu\npolicy: {base: default, remediation: {cooldown: *j}}"
        )
    )
    started = time.monotonic()
    with pytest.raises(CaseError, match=r"policy\.remediation\.cooldown"):
        read_case_file(write(tmp_path, text.replace("a: &a", "x_a: &a"), "bomb.yaml"))
    assert time.monotonic() - started < 2.0
    many = "cases:\n" + "  - {name: x}\n" * 1001
    with pytest.raises(CaseError, match="more than 1000 in one file"):
        read_case_file(write(tmp_path, many, "many.yaml"))
    huge = write(tmp_path, GOOD + "#" * 1_000_001, "huge.yaml")
    with pytest.raises(CaseError, match="larger than"):
        read_case_file(huge)


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"now": float("nan")}, "now"),
        ({"samples": {"values": [95.0, float("inf")]}}, "samples.values.1"),
        ({"history": [{"action": "restart_nginx", "minutes_ago": float("inf")}]}, "history.0"),
        ({"samples": {"points": [[float("nan"), 1.0]]}}, "samples.points.0.0"),
    ],
)
def test_numbers_that_are_not_numbers_are_refused(extra: dict[str, object], field: str) -> None:
    data = {"name": "x", "samples": {"values": [1.0]}, "expect": {"decision": "escalate"}}
    with pytest.raises(CaseError, match=rf"s\.yaml: {re.escape(field)}.*finite number"):
        parse_case({**data, **extra}, source="s.yaml")
