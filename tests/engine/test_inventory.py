"""Inventories through the real ansible-inventory: hosts, series map, no secrets, clear errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.errors import InventoryError
from engine.inventory import Inventory, load_inventory, parse_listing

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "inventory"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# -- the shipped inventories (real ansible-inventory) ------------------------------


@pytest.fixture(scope="module")
def lab() -> Inventory:
    return load_inventory(SHIPPED / "lab.yml")


def test_localhost_inventory() -> None:
    path = SHIPPED / "localhost.yml"
    inventory = load_inventory(path)
    assert inventory.path == path
    assert list(inventory.hosts) == ["localhost"]
    host = inventory.hosts["localhost"]
    assert host.address == "localhost"
    assert host.connection == "local"
    assert inventory.local_host() == "localhost"
    assert dict(inventory.series_map().bare) == {"localhost": "localhost"}


def test_lab_inventory_hosts(lab: Inventory) -> None:
    assert sorted(lab.hosts) == ["web1", "web2"]
    web1 = lab.hosts["web1"]
    assert web1.address == "127.0.0.1"
    assert web1.connection == "local"
    assert web1.groups == ("web",)
    assert dict(web1.labels) == {"role": "frontend"}
    assert lab.hosts["web2"].address == "127.0.0.2"
    assert dict(lab.hosts["web2"].labels) == {}


def test_lab_series_map_address_and_name(lab: Inventory) -> None:
    assert dict(lab.series_map().bare) == {
        "127.0.0.1": "web1",
        "web1": "web1",
        "127.0.0.2": "web2",
        "web2": "web2",
    }


def test_lab_local_host(lab: Inventory) -> None:
    assert lab.local_host() == "web1"


def test_unknown(lab: Inventory) -> None:
    assert lab.unknown(["web1", "web3", "web2", "all"]) == ["web3", "all"]
    assert lab.unknown([]) == []


def test_fleet_example_has_no_local_host() -> None:
    fleet = load_inventory(SHIPPED / "fleet.example.yml")
    assert sorted(fleet.hosts) == ["web01", "web02", "web03"]
    assert fleet.local_host() is None
    assert fleet.series_map().host_of("10.0.1.12:9100") == "web02"


# -- secrets never enter the engine -----------------------------------------------


def test_secret_host_vars_are_dropped(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "secret.yml",
        "all:\n"
        "  vars:\n"
        "    ansible_become_password: t0psecret\n"
        "  hosts:\n"
        "    h1:\n"
        "      ansible_host: 10.0.0.1\n"
        "      ansible_password: s3cret\n"
        "      autosre_labels: {team: core}\n",
    )
    inventory = load_inventory(path)
    assert list(inventory.hosts) == ["h1"]
    assert inventory.hosts["h1"].address == "10.0.0.1"
    assert dict(inventory.hosts["h1"].labels) == {"team": "core"}
    text = repr(inventory)
    assert "s3cret" not in text
    assert "t0psecret" not in text
    assert "password" not in text


def test_secret_values_are_kept_for_redaction_only(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "secret.yml",
        "all:\n"
        "  vars:\n"
        "    ansible_become_password: group-pw-1\n"
        "  hosts:\n"
        "    h1:\n"
        "      db_password: db-pw-2\n"
        "      ansible_ssh_pass: ssh-pw-3\n"
        "      app: {api_key: nested-key-4, port: 8080}\n"
        "      autosre_labels: {team: core, deploy_token: label-tok-5}\n"
        "      owner: not-a-secret\n",
    )
    inventory = load_inventory(path)
    assert inventory.secrets == {
        "group-pw-1",
        "db-pw-2",
        "ssh-pw-3",
        "nested-key-4",
        "label-tok-5",
    }
    assert "pw" not in repr(inventory)


def test_ini_inventory(tmp_path: Path) -> None:
    path = write(tmp_path, "hosts.ini", "[db]\npg1 ansible_host=10.0.0.5\n[web]\nweb1\n")
    inventory = load_inventory(path)
    assert sorted(inventory.hosts) == ["pg1", "web1"]
    assert inventory.hosts["pg1"].groups == ("db",)
    assert inventory.series_map().host_of("10.0.0.5") == "pg1"


# -- errors ---------------------------------------------------------------------------


def test_unparsable_file(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yml", "all: [\n  hosts\n")
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    assert "parse" in message.lower()


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.yml"
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert str(caught.value) == f"{path}: no such file or directory"


@pytest.mark.parametrize("text", ["", "all:\n  hosts: {}\n"])
def test_empty_inventory(tmp_path: Path, text: str) -> None:
    path = write(tmp_path, "empty.yml", text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert str(caught.value) == f"{path}: no hosts in the inventory"


@pytest.mark.parametrize(
    ("text", "bad"),
    [
        ('all:\n  hosts:\n    "web*":\n', "web*"),
        ('all:\n  hosts:\n    "a:b":\n', "a:b"),
        ("[web]\nweb*\n", "web*"),
    ],
)
def test_pattern_like_host_names_are_refused_by_the_real_parser(
    tmp_path: Path, text: str, bad: str
) -> None:
    path = write(tmp_path, "patterns.ini" if text.startswith("[") else "patterns.yml", text)
    with pytest.raises(InventoryError) as caught:
        load_inventory(path)
    assert str(caught.value) == f"{path}: host {bad!r}: not a plain host name"


# -- parse_listing -------------------------------------------------------------------


def listing(*names: str, hostvars: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "_meta": {"hostvars": hostvars or {}},
        "all": {"children": ["ungrouped"]},
        "ungrouped": {"hosts": list(names)},
    }


@pytest.mark.parametrize(
    "name",
    ["web*", "a:b", "!web", "&web", "web[1:3]", "~web.*", "-x", ".hidden", "a b", "a/b", "", "w\n"],
)
def test_pattern_like_names_refused(name: str) -> None:
    with pytest.raises(InventoryError) as caught:
        parse_listing(listing("ok1", name), path=Path("inv.yml"))
    assert str(caught.value) == f"inv.yml: host {name!r}: not a plain host name"


@pytest.mark.parametrize("name", ["web1", "web-01.example.com", "10.0.0.1", "Web_2"])
def test_plain_names_accepted(name: str) -> None:
    assert list(parse_listing(listing(name), path=Path("inv.yml")).hosts) == [name]


def test_hosts_only_in_hostvars_are_found() -> None:
    inventory = parse_listing(
        {"_meta": {"hostvars": {"h1": {"ansible_host": "10.1.1.1"}}}}, path=Path("i")
    )
    assert inventory.hosts["h1"].address == "10.1.1.1"
    assert inventory.hosts["h1"].groups == ()


def test_labels_must_be_a_mapping() -> None:
    with pytest.raises(InventoryError, match="autosre_labels must be a mapping"):
        parse_listing(listing("h1", hostvars={"h1": {"autosre_labels": ["x"]}}), path=Path("i"))


def test_labels_are_strings() -> None:
    inventory = parse_listing(
        listing("h1", hostvars={"h1": {"autosre_labels": {"tier": 1, "canary": True}}}),
        path=Path("i"),
    )
    assert dict(inventory.hosts["h1"].labels) == {"tier": "1", "canary": "True"}


def test_empty_listing() -> None:
    with pytest.raises(InventoryError, match=r"^i: no hosts in the inventory$"):
        parse_listing({"_meta": {"hostvars": {}}, "all": {"children": []}}, path=Path("i"))


def test_an_address_that_is_another_hosts_name_is_refused() -> None:
    # web2's address is literally "web1": a series labelled web1:9100 could be either.
    inventory = parse_listing(
        listing("web1", "web2", hostvars={"web2": {"ansible_host": "web1"}}), path=Path("i")
    )
    with pytest.raises(InventoryError, match=r"^i: host web2 has the address 'web1'"):
        inventory.series_map()


# -- series to hosts: exact, explicit, never ambiguous ------------------------------


def _shared(**instances: str) -> Inventory:
    """web1..web3 on one address (a lab, or hosts behind one NAT), some with autosre_instance."""
    hostvars: dict[str, dict[str, str]] = {
        name: {"ansible_host": "127.0.0.1"} for name in ("web1", "web2", "web3")
    }
    for name, instance in instances.items():
        hostvars[name]["autosre_instance"] = instance
    return parse_listing(listing("web1", "web2", "web3", hostvars=hostvars), path=Path("i"))


def test_autosre_instance_matches_the_exact_label_port_included() -> None:
    series = _shared(
        web1="127.0.0.1:9101", web2="127.0.0.1:9102", web3="127.0.0.1:9103"
    ).series_map()
    assert series.host_of("127.0.0.1:9102") == "web2"
    assert series.host_of("127.0.0.1:9103") == "web3"
    # The shared address alone names no host, and neither does an unknown port.
    assert series.host_of("127.0.0.1") is None
    assert series.host_of("127.0.0.1:9104") is None
    assert series.host_of("web2:9100") == "web2"  # names still match


def test_hosts_sharing_an_address_without_autosre_instance_are_refused() -> None:
    inventory = _shared(web1="127.0.0.1:9101")
    with pytest.raises(InventoryError) as refused:
        inventory.series_map()
    message = str(refused.value)
    assert message.startswith("i: hosts web1, web2, web3 share the address 127.0.0.1")
    assert "set autosre_instance on web2, web3" in message


def test_two_hosts_claiming_one_instance_are_refused() -> None:
    inventory = _shared(web1="127.0.0.1:9101", web2="127.0.0.1:9101", web3="127.0.0.1:9103")
    with pytest.raises(InventoryError, match=r"hosts web1 and web2 both set autosre_instance"):
        inventory.series_map()


@pytest.mark.parametrize(
    "hostile", ["{{ lookup('pipe', 'id') }}", "a b", "x" * 400, "", ["list"], "web1:9100\n"]
)
def test_autosre_instance_must_look_like_an_instance_label(hostile: object) -> None:
    with pytest.raises(InventoryError, match=r"^i: host web1: autosre_instance must be"):
        parse_listing(
            listing("web1", hostvars={"web1": {"autosre_instance": hostile}}), path=Path("i")
        )


def test_local_host_by_address() -> None:
    inventory = parse_listing(
        listing("a", "b", hostvars={"b": {"ansible_host": "127.0.0.1"}}), path=Path("i")
    )
    assert inventory.local_host() == "b"
    assert parse_listing(listing("a"), path=Path("i")).local_host() is None
