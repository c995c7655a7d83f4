"""Policy files: the shipped ones load; every bad one is refused naming file, field and reason."""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.errors import PolicyError
from engine.policy.load import load_policy, parse_policy
from engine.policy.schema import Policy
from engine.policy.template_check import template_warnings

ROOT = Path(__file__).resolve().parents[2]
POLICIES = ROOT / "policies"
PLAYBOOKS = ROOT / "playbooks"

Mutation = Callable[[dict[str, Any]], None]


def lab_data() -> dict[str, Any]:
    """The shipped lab policy as plain data, ready to be broken one field at a time."""
    data = yaml.safe_load((POLICIES / "lab.yaml").read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return copy.deepcopy(data)


def write_policy(directory: Path, data: object, name: str = "policy.yaml") -> Path:
    path = directory / name
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def refusal(tmp_path: Path, mutate: Mutation) -> PolicyError:
    """Write the lab policy with one change and return the PolicyError loading it raises."""
    data = lab_data()
    mutate(data)
    path = write_policy(tmp_path, data)
    with pytest.raises(PolicyError) as caught:
        load_policy(path, playbook_dir=PLAYBOOKS)
    error = caught.value
    assert error.path == str(path)
    assert str(path) in str(error)
    assert error.reason in str(error)
    return error


def high_cpu(data: dict[str, Any]) -> dict[str, Any]:
    rule = data["signals"]["high_cpu"]
    assert isinstance(rule, dict)
    return rule


def restart(data: dict[str, Any]) -> dict[str, Any]:
    action = data["actions"]["restart_nginx"]
    assert isinstance(action, dict)
    return action


# -- the shipped policies -------------------------------------------------------


@pytest.mark.parametrize("name", ["default.yaml", "lab.yaml"])
def test_shipped_policies_load_with_their_playbooks(name: str) -> None:
    policy = load_policy(POLICIES / name, playbook_dir=PLAYBOOKS)
    assert isinstance(policy, Policy)
    assert {"restart_nginx", "rollback_nginx"} <= set(policy.actions)  # and the other kinds'
    assert policy.signal("high_cpu").ladder == ["restart_nginx", "rollback_nginx"]
    for action in policy.actions.values():
        assert (PLAYBOOKS / action.playbook).is_file()
        assert action.timeout > 0
    rule = policy.signal("high_cpu")
    assert rule.clear < rule.trigger


def test_lab_policy_values_and_durations() -> None:
    policy = load_policy(POLICIES / "lab.yaml", playbook_dir=PLAYBOOKS)
    rule = policy.signal("high_cpu")
    assert (rule.trigger, rule.clear) == (80, 50)
    assert (rule.window, rule.sustain, rule.step, rule.stale_after) == (3.0, 10.0, 1.0, 5.0)
    assert rule.staleness == 5.0
    assert policy.actions["restart_nginx"].timeout == 60.0
    assert policy.remediation.cooldown == 30.0
    assert policy.remediation.failure_memory.window == 3600.0


def test_default_policy_durations() -> None:
    policy = load_policy(POLICIES / "default.yaml", playbook_dir=PLAYBOOKS)
    rule = policy.signal("high_cpu")
    assert (rule.window, rule.sustain, rule.step) == (60.0, 300.0, 15.0)
    assert policy.remediation.cooldown == 900.0
    assert policy.remediation.failure_memory.window == 86400.0
    assert policy.remediation.verify_timeout == 300.0


def test_settle_defaults_to_one_step_plus_the_window() -> None:
    lab = load_policy(POLICIES / "lab.yaml", playbook_dir=PLAYBOOKS)
    assert lab.remediation.settle is None
    assert lab.settle("high_cpu") == 1.0 + 3.0
    default = load_policy(POLICIES / "default.yaml", playbook_dir=PLAYBOOKS)
    assert default.settle("high_cpu") == 15.0 + 60.0


def test_explicit_settle_is_kept() -> None:
    data = lab_data()
    data["remediation"]["settle"] = "8s"
    assert parse_policy(data).settle("high_cpu") == 8.0


def test_promql_fills_in_the_window() -> None:
    lab = load_policy(POLICIES / "lab.yaml", playbook_dir=PLAYBOOKS)
    assert lab.signal("high_cpu").promql == (
        '100 * (1 - avg by (instance) (irate(node_cpu_seconds_total{mode="idle"}[3s])))'
    )
    default = load_policy(POLICIES / "default.yaml", playbook_dir=PLAYBOOKS)
    assert default.signal("high_cpu").promql.endswith('{mode="idle"}[1m])))')


@pytest.mark.parametrize(
    ("window", "expected"), [("1500ms", "[1500ms]"), ("90s", "[90s]"), ("2m", "[2m]")]
)
def test_promql_window_rendering(window: str, expected: str) -> None:
    data = lab_data()
    high_cpu(data)["window"] = window
    assert parse_policy(data).signal("high_cpu").promql.endswith(f"{expected})))")


def test_policy_is_frozen() -> None:
    policy = parse_policy(lab_data())
    with pytest.raises(ValueError, match="frozen"):
        policy.remediation.cooldown = 1.0  # type: ignore[misc]


# -- refusals: file, field and reason --------------------------------------------


def test_clear_must_be_below_trigger(tmp_path: Path) -> None:
    error = refusal(tmp_path, lambda d: high_cpu(d).update(clear=80))
    assert error.field == "signals.high_cpu"
    assert "clear (80.0) must be below trigger (80.0)" in error.reason


def test_unknown_field(tmp_path: Path) -> None:
    error = refusal(tmp_path, lambda d: high_cpu(d).update(treshold=90))
    assert error.field == "signals.high_cpu.treshold"
    assert "Extra inputs are not permitted" in error.reason


def test_unknown_top_level_field(tmp_path: Path) -> None:
    error = refusal(tmp_path, lambda d: d.update(actons={}))
    assert error.field == "actons"


def test_wrong_type(tmp_path: Path) -> None:
    error = refusal(tmp_path, lambda d: high_cpu(d).update(trigger="high"))
    assert error.field == "signals.high_cpu.trigger"
    assert "valid number" in error.reason


def test_wrong_duration(tmp_path: Path) -> None:
    error = refusal(tmp_path, lambda d: high_cpu(d).update(sustain="10x"))
    assert error.field == "signals.high_cpu.sustain"
    assert "10x" in error.reason


def test_missing_ladder(tmp_path: Path) -> None:
    error = refusal(tmp_path, lambda d: d["signals"]["high_cpu"].pop("ladder"))
    assert error.field == "signals.high_cpu.ladder"
    assert "Field required" in error.reason


def test_empty_ladder(tmp_path: Path) -> None:
    error = refusal(tmp_path, lambda d: d["signals"]["high_cpu"].update(ladder=[]))
    assert error.field == "signals.high_cpu.ladder"


def test_ladder_rung_not_in_actions(tmp_path: Path) -> None:
    error = refusal(tmp_path, lambda d: d["signals"]["high_cpu"].update(ladder=["reboot"]))
    assert "signals.high_cpu.ladder" in str(error)
    assert "'reboot' is not in actions" in error.reason


def test_ladder_rung_error_names_the_ladder_field(tmp_path: Path) -> None:
    error = refusal(tmp_path, lambda d: d["signals"]["high_cpu"].update(ladder=["reboot"]))
    assert error.field == "signals.high_cpu.ladder"


@pytest.mark.parametrize("name", ["escalate", "do_nothing"])
def test_reserved_action_names(tmp_path: Path, name: str) -> None:
    error = refusal(tmp_path, lambda d: d["actions"].update({name: restart(d)}))
    assert error.field == "actions"
    assert f"{name!r} is not an allowed action name" in error.reason


@pytest.mark.parametrize("name", ["restart nginx", "Restart", "1st", "restart-nginx", ""])
def test_malformed_action_names(tmp_path: Path, name: str) -> None:
    error = refusal(tmp_path, lambda d: d["actions"].update({name: restart(d)}))
    assert error.field == "actions"
    assert "is not an allowed action name" in error.reason


@pytest.mark.parametrize(
    "playbook", ["../restart_nginx.yml", "sub/../../x.yml", "/etc/passwd.yml", "restart_nginx.sh"]
)
def test_playbook_must_be_relative_yml(tmp_path: Path, playbook: str) -> None:
    error = refusal(tmp_path, lambda d: restart(d).update(playbook=playbook))
    assert error.field == "actions.restart_nginx.playbook"
    assert "relative to the playbook directory" in error.reason


def test_missing_playbook_file(tmp_path: Path) -> None:
    error = refusal(tmp_path, lambda d: restart(d).update(playbook="nope.yml"))
    assert error.field == "actions.restart_nginx.playbook"
    assert error.reason == f"nope.yml not found in {PLAYBOOKS}"


def test_playbook_dir_without_the_playbooks(tmp_path: Path) -> None:
    path = POLICIES / "lab.yaml"
    with pytest.raises(PolicyError) as caught:
        load_policy(path, playbook_dir=tmp_path)
    assert caught.value.field.startswith("actions.")
    assert caught.value.field.endswith(".playbook")
    assert "not found in" in caught.value.reason


def test_no_playbook_dir_skips_the_existence_check(tmp_path: Path) -> None:
    data = lab_data()
    restart(data)["playbook"] = "elsewhere.yml"
    policy = load_policy(write_policy(tmp_path, data))
    assert policy.actions["restart_nginx"].playbook == "elsewhere.yml"


def test_bad_var_regex(tmp_path: Path) -> None:
    def mutate(d: dict[str, Any]) -> None:
        restart(d)["vars"]["nginx_health_url"]["pattern"] = "https?://[a-z"

    error = refusal(tmp_path, mutate)
    assert error.field == "actions.restart_nginx.vars.nginx_health_url.pattern"
    assert "not a valid regular expression" in error.reason


@pytest.mark.parametrize(
    "name",
    [
        "ansible_host",
        "ansible_become_password",
        "hostvars",
        "groups",
        "inventory_dir",
        "autosre_release_file",
    ],
)
def test_ansible_reserved_var_names(tmp_path: Path, name: str) -> None:
    error = refusal(tmp_path, lambda d: restart(d)["vars"].update({name: {"pattern": ".*"}}))
    assert error.field == "actions.restart_nginx.vars"
    assert f"{name!r} is not an allowed variable name" in error.reason


@pytest.mark.parametrize("name", ["Url", "my-var", "has space"])
def test_malformed_var_names(tmp_path: Path, name: str) -> None:
    error = refusal(tmp_path, lambda d: restart(d)["vars"].update({name: {"pattern": ".*"}}))
    assert error.field == "actions.restart_nginx.vars"


def test_settle_shorter_than_step_plus_window(tmp_path: Path) -> None:
    error = refusal(tmp_path, lambda d: d["remediation"].update(settle="3s"))
    assert "remediation.settle" in str(error)
    assert "3s is shorter than one step plus the query window (4s)" in error.reason


def test_settle_equal_to_step_plus_window_is_fine() -> None:
    data = lab_data()
    data["remediation"]["settle"] = "4s"
    assert parse_policy(data).settle("high_cpu") == 4.0


def test_stale_after_shorter_than_a_step(tmp_path: Path) -> None:
    error = refusal(tmp_path, lambda d: high_cpu(d).update(stale_after="500ms"))
    assert error.field == "signals.high_cpu"
    assert "stale_after must be at least one step" in error.reason


def test_unsupported_version(tmp_path: Path) -> None:
    error = refusal(tmp_path, lambda d: d.update(version=3))
    assert error.field == "version"


@pytest.mark.parametrize(
    "query",
    [
        'rate(node_cpu_seconds_total{mode="idle"}[{window}])',  # single braces in the selector
        "rate(x[{window}]) {",
        "rate(x[{window}]) }",
        "rate(x[{0}])",
        "rate(x[{}])",
        "rate(x[{window!z}])",
        "rate(x[{window:d}])",
    ],
)
def test_query_with_stray_braces(tmp_path: Path, query: str) -> None:
    error = refusal(tmp_path, lambda d: high_cpu(d).update(query=query))
    assert error.field == "signals.high_cpu"
    assert "only use the {window} placeholder" in error.reason


@pytest.mark.parametrize("query", ["rate(x[{window.real}])", "rate(x[{window[x]}])"])
def test_query_with_attribute_or_index_placeholders(tmp_path: Path, query: str) -> None:
    error = refusal(tmp_path, lambda d: high_cpu(d).update(query=query))
    assert error.field == "signals.high_cpu"


def test_tiny_window_never_renders_a_zero_range(tmp_path: Path) -> None:
    data = lab_data()
    high_cpu(data)["window"] = "0.0004s"
    try:
        policy = parse_policy(data)
    except PolicyError:
        return  # refusing it would be fine too
    assert "[0s]" not in policy.signal("high_cpu").promql


@pytest.mark.parametrize("content", ["- a\n- b\n", "just a string\n", "42\n", ""])
def test_top_level_not_a_mapping(tmp_path: Path, content: str) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path, playbook_dir=PLAYBOOKS)
    assert caught.value.path == str(path)
    assert caught.value.field == ""
    assert "must hold a mapping" in caught.value.reason
    assert str(caught.value) == f"{path}: {caught.value.reason}"


def test_invalid_yaml_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nactions:\n  restart: [one, two\nremediation: {}\n", "utf-8")
    with pytest.raises(PolicyError) as caught:
        load_policy(path, playbook_dir=PLAYBOOKS)
    assert caught.value.path == str(path)
    assert caught.value.field == ""
    assert caught.value.reason.startswith("not valid YAML at line ")
    line = int(caught.value.reason.removeprefix("not valid YAML at line "))
    assert line in {3, 4}


def test_tab_indentation_is_invalid_yaml(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: 1\nactions:\n\trestart: {}\n", "utf-8")
    with pytest.raises(PolicyError, match=r"not valid YAML at line 3"):
        load_policy(path)


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError) as caught:
        load_policy(path, playbook_dir=PLAYBOOKS)
    assert caught.value.path == str(path)
    assert caught.value.reason.startswith("cannot read:")
    assert "No such file" in caught.value.reason


def test_unreadable_file(tmp_path: Path) -> None:
    # Tests may run as root, which reads any mode; a directory is unreadable as text for all.
    path = tmp_path / "policy.yaml"
    path.mkdir()
    with pytest.raises(PolicyError) as caught:
        load_policy(path, playbook_dir=PLAYBOOKS)
    assert caught.value.path == str(path)
    assert caught.value.reason.startswith("cannot read:")


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_bytes(b"version: 1\ncomment: \xff\xfe\n")
    with pytest.raises(PolicyError) as caught:
        load_policy(path, playbook_dir=PLAYBOOKS)
    assert caught.value.reason == "not UTF-8 text"


def test_yaml_tags_are_not_executed(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text("version: !!python/object/apply:os.system ['true']\n", "utf-8")
    with pytest.raises(PolicyError, match="not valid YAML"):
        load_policy(path)


def test_parse_policy_default_source() -> None:
    with pytest.raises(PolicyError) as caught:
        parse_policy([])
    assert caught.value.path == "<policy>"


# -- environment pass-through and template warnings --------------------------------


def test_action_env_names_are_kept() -> None:
    data = lab_data()
    restart(data)["env"] = ["SSH_AUTH_SOCK", "ANSIBLE_CONFIG"]
    policy = parse_policy(data)
    assert policy.actions["restart_nginx"].env == ["SSH_AUTH_SOCK", "ANSIBLE_CONFIG"]
    assert parse_policy(lab_data()).actions["restart_nginx"].env == []


@pytest.mark.parametrize(
    "name", ["AUTOSRE_SECRET_KEY", "AUTOSRE_DATABASE_URL", "GEMINI_API_KEY", "OPENAI_API_KEY"]
)
def test_action_env_refuses_the_engines_own_variables(tmp_path: Path, name: str) -> None:
    error = refusal(tmp_path, lambda d: restart(d).update(env=["SSH_AUTH_SOCK", name]))
    assert error.field == "actions.restart_nginx.env"
    assert name in error.reason


@pytest.mark.parametrize("name", ["", "A B", "X=1", "1ABC"])
def test_action_env_refuses_malformed_names(tmp_path: Path, name: str) -> None:
    error = refusal(tmp_path, lambda d: restart(d).update(env=[name]))
    assert error.field == "actions.restart_nginx.env"


def with_var_pattern(pattern: str) -> Policy:
    data = lab_data()
    restart(data)["vars"] = {"v": {"pattern": pattern}}
    return parse_policy(data)


@pytest.mark.parametrize(
    "pattern", [r"\S{8,64}", ".*", r"[^\s]+", r"x.*", r"[a-z{}% ]{2,40}", r"[\w(),'|]+"]
)
def test_patterns_that_admit_templates_are_warned_about(pattern: str) -> None:
    warnings = template_warnings(with_var_pattern(pattern))
    assert len(warnings) == 1
    assert warnings[0].startswith("actions.restart_nginx.vars.v: ")


@pytest.mark.parametrize(
    "pattern",
    [
        r"[a-z0-9-]{1,32}",
        r"[0-9]+",
        r"https?://[A-Za-z0-9.\-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/\-]*)?",
    ],
)
def test_tight_patterns_are_not_warned_about(pattern: str) -> None:
    assert template_warnings(with_var_pattern(pattern)) == []


def test_shipped_policies_have_no_template_warnings() -> None:
    for name in ("lab.yaml", "default.yaml"):
        assert template_warnings(load_policy(POLICIES / name)) == []
