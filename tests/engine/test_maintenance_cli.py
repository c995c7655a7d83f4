"""``autosre maintenance start|end|list`` and ``autosre host enable``: what they record, and
bad input refused with exit status 2 and a one-line message naming the problem."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest

from engine.record.audit import AuditLog
from engine.record.recorder import Recorder
from engine.store import open_store
from tests.engine.test_cli import ROOT, run
from tests.fixtures.store import migrated_sqlite

Capture = pytest.CaptureFixture[str]


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The lab policy and inventory (group web: web1, web2), and a migrated store."""
    monkeypatch.setenv("AUTOSRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUTOSRE_POLICY", str(ROOT / "policies" / "lab.yaml"))
    monkeypatch.setenv("AUTOSRE_INVENTORY", str(ROOT / "inventory" / "lab.yml"))
    monkeypatch.delenv("AUTOSRE_DATABASE_URL", raising=False)
    migrated_sqlite(tmp_path / "data" / "autosre.db")
    return tmp_path


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=UTC).isoformat()


def test_start_list_and_end_a_window(env: Path, capsys: Capture) -> None:
    code, out, err = run(
        capsys, "maintenance", "start", "--group", "web", "--for", "2h", "--reason", "kernel"
    )
    assert code == 0, err
    assert out.startswith("maintenance window 1 on group web until ")
    code, out, _ = run(capsys, "maintenance", "list", "--json")
    listed = json.loads(out)
    assert [(w["id"], w["group"], w["state"]) for w in listed["windows"]] == [(1, "web", "active")]
    code, out, err = run(capsys, "maintenance", "end", "1")
    assert (code, out.strip()) == (0, "maintenance window 1 on group web ended"), err
    code, _, err = run(capsys, "maintenance", "end", "1")
    assert code == 2 and "already ended" in err
    code, out, _ = run(capsys, "maintenance", "list", "--all")
    assert "ended" in out and "group web" in out
    audit = (env / "data" / "audit.jsonl").read_text().splitlines()
    kinds = [json.loads(line)["kind"] for line in audit]
    assert kinds == ["maintenance_started", "maintenance_ended"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--host", "web9", "--for", "1h"], "unknown host 'web9': not in the inventory"),
        (["--group", "nope", "--for", "1h"], "unknown group 'nope'"),
        (["--host", "web1"], "needs an end"),
        (["--host", "web1", "--until", iso(time.time() - 60)], "must end after it starts"),
        (
            [
                "--host",
                "web1",
                "--start",
                iso(time.time() - 7200),
                "--until",
                iso(time.time() - 60),
            ],
            "start in the past",
        ),
        (["--host", "web1", "--for", "8d"], "too long"),
        (["--host", "web1", "--for", "soon"], "expected a duration"),
        (["--host", "web1", "--until", "tomorrow"], "not an ISO 8601 time"),
        (["--for", "1h"], "one of the arguments --host --group is required"),
        (["--host", "web1", "--group", "web", "--for", "1h"], "not allowed with argument"),
    ],
)
def test_bad_windows_exit_2_with_a_clear_message(
    env: Path, capsys: Capture, argv: list[str], message: str
) -> None:
    if "--reason" not in argv:
        argv = [*argv, "--reason", "work"]
    code, out, err = run(capsys, "maintenance", "start", *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err and out == ""
    code, out, _ = run(capsys, "maintenance", "list", "--json")
    assert json.loads(out)["windows"] == []


def test_hostile_reasons_are_refused_or_shown_as_text(env: Path, capsys: Capture) -> None:
    code, _, err = run(
        capsys,
        "maintenance",
        "start",
        "--host",
        "web1",
        "--for",
        "1h",
        "--reason",
        "\x1b]0;pwn\x07",
    )
    assert code == 2 and "control characters" in err
    assert "\x1b" not in err
    hostile = "<script>alert(1)</script> {{ 7*7 }} \u202eevil"
    code, out, _ = run(
        capsys, "maintenance", "start", "--host", "web1", "--for", "1h", "--reason", hostile
    )
    assert code == 0
    code, out, _ = run(capsys, "maintenance", "list")
    assert "<script>alert(1)</script> {{ 7*7 }}" in out
    assert "\u202e" not in out  # the bidi override never reaches the terminal


def test_host_enable(env: Path, capsys: Capture) -> None:
    code, _, err = run(capsys, "host", "enable", "web1")
    assert code == 2 and "web1' is not taken out of automatic remediation" in err
    code, _, err = run(capsys, "host", "enable", "web9")
    assert code == 2 and "unknown host 'web9'" in err
    sessions = open_store(f"sqlite:///{env / 'data' / 'autosre.db'}")
    try:
        recorder = Recorder(sessions, AuditLog(env / "data" / "audit.jsonl"))
        recorder.maintenance.take_out("web1", "flapping", at=time.time(), incident_id=None)
        code, out, _ = run(capsys, "maintenance", "list")
        assert "out of automatic remediation: web1" in out
        code, out, err = run(capsys, "host", "enable", "web1")
        assert (code, out.strip()) == (0, "web1: automatic remediation re-enabled"), err
        assert recorder.maintenance.holds("web1", ("web",), time.time()).disabled_at is None
    finally:
        sessions.kw["bind"].dispose()
    last = json.loads((env / "data" / "audit.jsonl").read_text().splitlines()[-1])
    assert last["kind"] == "host_enabled" and last["data"]["by"]
