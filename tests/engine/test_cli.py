"""The CLI's contract: clear one-line errors with exit status 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autosre.cli import main
from tests.fixtures.store import migrated_sqlite

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTOSRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUTOSRE_POLICY", str(ROOT / "policies" / "lab.yaml"))
    monkeypatch.setenv("AUTOSRE_INVENTORY", str(ROOT / "inventory" / "lab.yml"))
    monkeypatch.delenv("AUTOSRE_PROMETHEUS_URL", raising=False)
    monkeypatch.delenv("AUTOSRE_DATABASE_URL", raising=False)
    migrated_sqlite(tmp_path / "data" / "autosre.db")
    return tmp_path


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse exits on usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["frobnicate"],
        ["incidents", "show", "abc"],
        ["incidents", "show", "0"],
        ["incidents", "list", "--status", "weird"],
        ["incidents", "list", "--limit", "-3"],
        ["chaos", "cpu", "--seconds", "0"],
        ["chaos", "cpu", "--seconds", "nan"],
        ["playbook", "run", "restart_nginx"],
    ],
)
def test_usage_errors_exit_2(
    env: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert "error:" in err
    assert "Traceback" not in err


def test_bad_policy_is_refused_with_file_field_and_reason(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    bad = env / "bad.yaml"
    bad.write_text((ROOT / "policies" / "lab.yaml").read_text().replace("clear: 50", "clear: 90"))
    code, _, err = run(capsys, "policy", "check", str(bad))
    assert code == 2
    assert f"{bad}: signals.high_cpu: clear (90.0) must be below trigger (80.0)" in err
    monkeypatch.setenv("AUTOSRE_POLICY", str(bad))
    code, _, err = run(capsys, "run", "--once")
    assert code == 2
    assert "clear (90.0) must be below trigger" in err
    assert not (env / "data" / "runs").exists()


def test_bad_setting_names_the_variable(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOSRE_INTERVAL", "soon")
    code, _, err = run(capsys, "incidents", "list")
    assert code == 2
    assert "AUTOSRE_INTERVAL" in err


def test_missing_incident_and_empty_list(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "incidents", "list", "--json")
    assert code == 0
    assert json.loads(out) == []
    code, _, err = run(capsys, "incidents", "show", "42")
    assert code == 2
    assert "no incident with id 42" in err


def test_policy_check_and_playbook_list(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "policy", "check")
    assert code == 0
    assert "restart_nginx -> rollback_nginx -> escalate" in out
    code, out, _ = run(capsys, "playbook", "list")
    assert code == 0
    assert "restart_nginx" in out
    assert "rollback_nginx" in out


def test_run_once_on_local_metrics(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AUTOSRE_INVENTORY", str(ROOT / "inventory" / "localhost.yml"))
    code, _, _ = run(capsys, "run", "--once")
    assert code == 0
    assert (env / "data" / "autosre.db").exists()
    code, out, _ = run(capsys, "db", "upgrade")
    assert code == 0
    assert "newest schema" in out


def test_an_ambiguous_series_map_is_refused_at_start(
    env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Two hosts behind one address, told apart by nothing: the engine must not guess.
    shared = env / "shared.ini"
    shared.write_text(
        "web1 ansible_host=127.0.0.1 autosre_instance=127.0.0.1:9101\nweb2 ansible_host=127.0.0.1\n"
    )
    monkeypatch.setenv("AUTOSRE_INVENTORY", str(shared))
    monkeypatch.setenv("AUTOSRE_PROMETHEUS_URL", "http://127.0.0.1:9")
    code, _, err = run(capsys, "run", "--once")
    assert code == 2
    assert "hosts web1, web2 share the address 127.0.0.1" in err
    assert "set autosre_instance on web2" in err
    assert "Traceback" not in err
