"""The run gate: whitelisted action, inventory hosts, allowed vars matching their pattern."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.errors import RefusedError
from engine.inventory import Inventory, parse_listing
from engine.policy.load import load_policy, parse_policy
from engine.policy.schema import Policy
from engine.policy.whitelist import build_request, parse_extra_vars
from engine.types import RunRequest

ROOT = Path(__file__).resolve().parents[2]
PLAYBOOKS = ROOT / "playbooks"
LAB_POLICY = ROOT / "policies" / "lab.yaml"


@pytest.fixture(scope="module")
def policy() -> Policy:
    return load_policy(LAB_POLICY, playbook_dir=PLAYBOOKS)


@pytest.fixture(scope="module")
def inventory() -> Inventory:
    return parse_listing(
        {
            "_meta": {
                "hostvars": {
                    "web1": {"ansible_host": "127.0.0.1", "ansible_connection": "local"},
                    "web2": {"ansible_host": "127.0.0.2", "ansible_connection": "local"},
                }
            },
            "all": {"children": ["ungrouped", "web"]},
            "web": {"hosts": ["web1", "web2"]},
        },
        path=Path("inv"),
    )


def lab_with_secret_var() -> Policy:
    data: dict[str, Any] = yaml.safe_load(LAB_POLICY.read_text(encoding="utf-8"))
    data = copy.deepcopy(data)
    data["actions"]["restart_nginx"]["vars"]["api_token"] = {
        "pattern": "[A-Za-z0-9]{8,64}",
        "secret": True,
    }
    return parse_policy(data)


# -- parse_extra_vars --------------------------------------------------------------


def test_parse_extra_vars() -> None:
    assert parse_extra_vars([]) == {}
    assert parse_extra_vars(["a=1", "b=x=y", "c="]) == {"a": "1", "b": "x=y", "c": ""}


@pytest.mark.parametrize("pair", ["key", "=value", ""])
def test_extra_var_without_key_or_equals(pair: str) -> None:
    with pytest.raises(RefusedError, match="is not key=value"):
        parse_extra_vars([pair])


def test_repeated_extra_var() -> None:
    with pytest.raises(RefusedError, match="'a' given twice"):
        parse_extra_vars(["a=1", "b=2", "a=1"])


# -- build_request: refusals -------------------------------------------------------


def test_unknown_action(policy: Policy, inventory: Inventory) -> None:
    with pytest.raises(RefusedError) as caught:
        build_request(policy, inventory, PLAYBOOKS, action="reboot", hosts=["web1"])
    message = str(caught.value)
    assert "'reboot' is not a whitelisted action" in message
    assert "restart_nginx, rollback_nginx" in message


@pytest.mark.parametrize("action", ["escalate", "do_nothing", "../restart_nginx", ""])
def test_reserved_or_odd_action_names_are_not_runnable(
    policy: Policy, inventory: Inventory, action: str
) -> None:
    with pytest.raises(RefusedError, match="not a whitelisted action"):
        build_request(policy, inventory, PLAYBOOKS, action=action, hosts=["web1"])


def test_host_not_in_inventory(policy: Policy, inventory: Inventory) -> None:
    with pytest.raises(RefusedError) as caught:
        build_request(
            policy, inventory, PLAYBOOKS, action="restart_nginx", hosts=["web1", "db9", "all"]
        )
    assert str(caught.value) == "not in the inventory inv: db9, all"


@pytest.mark.parametrize("pattern", ["web*", "all", "web", "web1:web2", "!web2", "127.0.0.1"])
def test_host_patterns_and_addresses_are_not_hosts(
    policy: Policy, inventory: Inventory, pattern: str
) -> None:
    with pytest.raises(RefusedError, match="not in the inventory"):
        build_request(policy, inventory, PLAYBOOKS, action="restart_nginx", hosts=[pattern])


def test_no_host(policy: Policy, inventory: Inventory) -> None:
    with pytest.raises(RefusedError, match="no host given"):
        build_request(policy, inventory, PLAYBOOKS, action="restart_nginx", hosts=[])


def test_extra_var_not_allowed(policy: Policy, inventory: Inventory) -> None:
    with pytest.raises(RefusedError) as caught:
        build_request(
            policy,
            inventory,
            PLAYBOOKS,
            action="restart_nginx",
            hosts=["web1"],
            extra_vars={"ansible_host": "10.0.0.9"},
        )
    message = str(caught.value)
    assert "extra var 'ansible_host' is not allowed for restart_nginx" in message
    assert "(allowed: nginx_health_url)" in message


@pytest.mark.parametrize(
    "value",
    [
        "http://x/;rm -rf /",
        "http://127.0.0.1/\n",
        "http://127.0.0.1/\nansible_host=evil",
        "http://x/$(id)",
        "http://x/{{ lookup('pipe', 'id') }}",
        "file:///etc/passwd",
        " http://x/",
        "",
    ],
)
def test_value_not_matching_pattern(policy: Policy, inventory: Inventory, value: str) -> None:
    with pytest.raises(RefusedError) as caught:
        build_request(
            policy,
            inventory,
            PLAYBOOKS,
            action="restart_nginx",
            hosts=["web1"],
            extra_vars={"nginx_health_url": value},
        )
    assert "extra var 'nginx_health_url': value does not match" in str(caught.value)


def test_playbook_outside_the_playbook_dir_is_refused(
    tmp_path: Path, policy: Policy, inventory: Inventory
) -> None:
    # A symlink in the playbook dir that leads outside it must not be followed.
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "restart_nginx.yml").write_text("- hosts: all\n  tasks: []\n", "utf-8")
    playbook_dir = tmp_path / "playbooks"
    playbook_dir.mkdir()
    (playbook_dir / "restart_nginx.yml").symlink_to(outside / "restart_nginx.yml")
    with pytest.raises(RefusedError, match="not found in"):
        build_request(policy, inventory, playbook_dir, action="restart_nginx", hosts=["web1"])


def test_missing_playbook_is_refused(tmp_path: Path, policy: Policy, inventory: Inventory) -> None:
    with pytest.raises(RefusedError) as caught:
        build_request(policy, inventory, tmp_path, action="rollback_nginx", hosts=["web2"])
    assert (
        str(caught.value)
        == f"playbook rollback_nginx.yml for rollback_nginx not found in {tmp_path}"
    )


# -- build_request: a valid request -------------------------------------------------


def test_valid_request(policy: Policy, inventory: Inventory) -> None:
    request = build_request(
        policy,
        inventory,
        PLAYBOOKS,
        action="restart_nginx",
        hosts=["web2", "web1", "web2"],
        extra_vars={"nginx_health_url": "http://127.0.0.1:8080/healthz"},
    )
    assert isinstance(request, RunRequest)
    assert request.action == "restart_nginx"
    playbook = Path(request.playbook)
    assert playbook.is_absolute()
    assert playbook == (PLAYBOOKS / "restart_nginx.yml").resolve()
    assert playbook.is_relative_to(PLAYBOOKS.resolve())
    assert playbook.is_file()
    assert request.hosts == ("web2", "web1")  # order kept, duplicates dropped
    assert dict(request.extra_vars) == {"nginx_health_url": "http://127.0.0.1:8080/healthz"}
    assert request.secret_vars == frozenset()
    assert request.check is False
    assert request.timeout == 60
    assert isinstance(request.timeout, int)


def test_relative_playbook_dir_gives_an_absolute_path(
    policy: Policy, inventory: Inventory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    request = build_request(
        policy, inventory, Path("playbooks"), action="rollback_nginx", hosts=["web1"], check=True
    )
    assert Path(request.playbook) == PLAYBOOKS.resolve() / "rollback_nginx.yml"
    assert request.check is True
    assert dict(request.extra_vars) == {}


def test_secret_vars_are_named(inventory: Inventory) -> None:
    policy = lab_with_secret_var()
    request = build_request(
        policy,
        inventory,
        PLAYBOOKS,
        action="restart_nginx",
        hosts=["web1"],
        extra_vars={"api_token": "abcdEFGH1234"},
    )
    assert request.secret_vars == frozenset({"api_token"})
    assert dict(request.extra_vars) == {"api_token": "abcdEFGH1234"}


def test_refusal_does_not_echo_a_secret_value(inventory: Inventory) -> None:
    policy = lab_with_secret_var()
    with pytest.raises(RefusedError) as caught:
        build_request(
            policy,
            inventory,
            PLAYBOOKS,
            action="restart_nginx",
            hosts=["web1"],
            extra_vars={"api_token": "short!"},
        )
    assert "short!" not in str(caught.value)


def test_default_policy_timeout_is_an_int(inventory: Inventory) -> None:
    policy = load_policy(ROOT / "policies" / "default.yaml", playbook_dir=PLAYBOOKS)
    request = build_request(policy, inventory, PLAYBOOKS, action="restart_nginx", hosts=["web1"])
    assert request.timeout == 120
    assert isinstance(request.timeout, int)


def test_request_from_parsed_cli_vars(policy: Policy, inventory: Inventory) -> None:
    extra = parse_extra_vars(["nginx_health_url=https://web1.example:443/"])
    request = build_request(
        policy, inventory, PLAYBOOKS, action="restart_nginx", hosts=["web1"], extra_vars=extra
    )
    assert dict(request.extra_vars) == {"nginx_health_url": "https://web1.example:443/"}
