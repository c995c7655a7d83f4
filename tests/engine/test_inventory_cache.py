"""The parsed inventory kept between starts: a hit skips ansible-inventory, any change of
content (even with the same mtime) misses, entries are private, secrets never cached; and
ansible-inventory's time limit grows with the inventory and is named when hit."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import engine.inventory
from engine.errors import InventoryError
from engine.inventory import BASE_TIMEOUT, default_timeout, load_inventory
from engine.inventory_cache import read_cached, sources_digest

INI = "web1 ansible_host=10.0.0.1\nweb2 ansible_host=10.0.0.2\n[web]\nweb1\n"


@pytest.fixture
def listings(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The inventories ansible-inventory really parsed, in order."""
    seen: list[Path] = []
    real = engine.inventory._list

    def counting(path: Path, env: Any, timeout: float) -> Any:
        seen.append(path)
        return real(path, env, timeout)

    monkeypatch.setattr(engine.inventory, "_list", counting)
    return seen


def write_keeping_mtime(path: Path, text: str) -> None:
    """Change the content, not the mtime: the cache must not be fooled."""
    before = path.stat()
    path.write_text(text)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


def test_a_second_start_reads_the_cache(tmp_path: Path, listings: list[Path]) -> None:
    inventory = tmp_path / "hosts"
    inventory.write_text(INI)
    cache = tmp_path / "data" / "cache"
    first = load_inventory(inventory, cache_dir=cache)
    second = load_inventory(inventory, cache_dir=cache)
    assert listings == [inventory]
    assert second == first
    assert second.hosts["web1"].groups == ("web",) and second.hosts["web2"].address == "10.0.0.2"
    (entry,) = cache.iterdir()
    assert entry.stat().st_mode & 0o777 == 0o600
    assert cache.stat().st_mode & 0o777 == 0o700
    assert load_inventory(inventory) == first  # no cache dir: parsed, as before
    assert len(listings) == 2


@pytest.mark.parametrize("change", ["inventory", "group_vars", "host_vars"])
def test_a_change_of_content_misses(tmp_path: Path, listings: list[Path], change: str) -> None:
    inventory = tmp_path / "hosts"
    inventory.write_text(INI)
    vars_file = tmp_path / change / ("web.yml" if change == "group_vars" else "web1.yml")
    if change != "inventory":
        vars_file.parent.mkdir()
        vars_file.write_text("autosre_labels: {role: a}\n")
    cache = tmp_path / "cache"
    load_inventory(inventory, cache_dir=cache)
    if change == "inventory":
        write_keeping_mtime(inventory, INI.replace("10.0.0.2", "10.0.0.9"))
    else:
        write_keeping_mtime(vars_file, "autosre_labels: {role: b}\n")
    again = load_inventory(inventory, cache_dir=cache)
    assert len(listings) == 2
    if change == "inventory":
        assert again.hosts["web2"].address == "10.0.0.9"
    else:
        assert dict(again.hosts["web1"].labels) == {"role": "b"}
    assert load_inventory(inventory, cache_dir=cache) == again
    assert len(listings) == 2
    assert len(list(cache.iterdir())) == 1  # the entry was replaced, not added to


def test_an_inventory_with_secrets_is_never_cached(tmp_path: Path, listings: list[Path]) -> None:
    inventory = tmp_path / "hosts"
    inventory.write_text(INI + "[web:vars]\nansible_become_password=hunter2-sekret\n")
    cache = tmp_path / "cache"
    for _ in range(2):
        assert load_inventory(inventory, cache_dir=cache).secrets == {"hunter2-sekret"}
    assert len(listings) == 2
    assert not cache.exists() or not list(cache.iterdir())


def test_a_dynamic_inventory_is_never_cached(tmp_path: Path) -> None:
    script = tmp_path / "inventory.sh"
    script.write_text('#!/bin/sh\necho \'{"web": {"hosts": ["web1"]}}\'\n')
    script.chmod(0o700)
    assert sources_digest(script, {}) is None
    plugin = tmp_path / "constructed.yml"
    plugin.write_text("plugin: ansible.builtin.constructed\n")
    assert sources_digest(plugin, {}) is None
    static = tmp_path / "hosts.yml"
    static.write_text("all:\n  hosts:\n    web1:\n")
    assert sources_digest(static, {}) is not None
    assert sources_digest(static, {}) != sources_digest(static, {"HOME": "/elsewhere"})


def test_a_planted_or_foreign_entry_is_ignored(tmp_path: Path, listings: list[Path]) -> None:
    inventory = tmp_path / "hosts"
    inventory.write_text(INI)
    cache = tmp_path / "cache"
    load_inventory(inventory, cache_dir=cache)
    (entry,) = cache.iterdir()
    entry.chmod(0o644)  # anyone could have written it: its hosts are not believed
    digest = sources_digest(inventory, engine.inventory.child_environment())
    assert digest is not None
    load_inventory(inventory, cache_dir=cache)
    assert len(listings) == 2
    assert entry.stat().st_mode & 0o777 == 0o600  # and it was written anew, private
    entry.write_text("{not json")
    load_inventory(inventory, cache_dir=cache)
    assert len(listings) == 3
    assert read_cached(cache, inventory, "another digest") is None


def test_the_time_limit_grows_with_the_inventory(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.write_text("web1\n")
    assert default_timeout(small) == pytest.approx(BASE_TIMEOUT, abs=1)
    big = tmp_path / "big"
    big.write_text(
        "".join(f"web{i:05d} ansible_host=10.0.{i // 256}.{i % 256}\n" for i in range(10_000))
    )
    assert default_timeout(big) > 120  # 10,000 hosts took up to 71 s on a busy machine


def test_the_time_limit_is_named_when_hit(tmp_path: Path) -> None:
    inventory = tmp_path / "hosts"
    inventory.write_text(INI)
    with pytest.raises(InventoryError) as caught:
        load_inventory(inventory, timeout=0.05)
    message = str(caught.value)
    assert message.startswith(f"{inventory}: ansible-inventory did not finish within 0.05 s")
    assert "AUTOSRE_INVENTORY_TIMEOUT" in message
