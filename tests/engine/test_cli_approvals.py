"""``autosre approvals`` and the model call in ``incidents show``: exit 0, or 2 with one line."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from autosre.cli import main
from engine.record.audit import AuditLog
from engine.record.recorder import Recorder
from engine.store import open_store
from engine.types import PlannerCall, Proposal, Verdict, VerdictKind
from tests.engine.test_read_models import APPROVAL
from tests.fixtures.store import migrated_sqlite

ROOT = Path(__file__).resolve().parents[2]
APPROVAL_KEYS = set(APPROVAL)  # the read model's fields, as the API shows them
AWAIT = Verdict(
    VerdictKind.AWAIT_APPROVAL, "restart_nginx", "confidence below 0.8", "approval_required"
)


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AUTOSRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUTOSRE_POLICY", str(ROOT / "policies" / "lab.yaml"))
    monkeypatch.setenv("AUTOSRE_INVENTORY", str(ROOT / "inventory" / "lab.yml"))
    monkeypatch.setenv("SUDO_USER", "alice")
    monkeypatch.delenv("AUTOSRE_PROMETHEUS_URL", raising=False)
    monkeypatch.delenv("AUTOSRE_DATABASE_URL", raising=False)
    migrated_sqlite(tmp_path / "data" / "autosre.db")
    return tmp_path


@pytest.fixture
def recorder(env: Path) -> Iterator[Recorder]:
    """A recorder on the same store and audit log the CLI uses."""
    sessions = open_store(f"sqlite:///{env / 'data' / 'autosre.db'}")
    yield Recorder(sessions, AuditLog(env / "data" / "audit.jsonl"))
    sessions.kw["bind"].dispose()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse exits on usage errors and --help
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def hold(recorder: Recorder, host: str = "web1", *, proposal: Proposal | None = None) -> int:
    """An incident held for approval, requested now and valid for an hour."""
    now = time.time()
    incident_id = recorder.incidents.open(host, "high_cpu", 97.0, "CPU high", at=now, since=now)
    proposal = proposal or Proposal("restart_nginx", 0.7, "nginx workers busy", "gemini")
    decision_id = recorder.decisions.record(incident_id, host, proposal, AWAIT, now)
    return recorder.approvals.request(
        incident_id,
        decision_id,
        host,
        "restart_nginx",
        "nginx workers busy",
        at=now,
        expires_at=now + 3600,
    )


def test_list_when_there_is_nothing(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "approvals", "list")
    assert (code, out) == (0, "no pending approvals\n")
    code, out, _ = run(capsys, "approvals", "list", "--all")
    assert (code, out) == (0, "no approvals\n")
    code, out, _ = run(capsys, "approvals", "list", "--json")
    assert code == 0
    assert json.loads(out) == []


def test_list_approve_and_list_all(recorder: Recorder, capsys: pytest.CaptureFixture[str]) -> None:
    first = hold(recorder, "web1")
    second = hold(recorder, "web2")

    code, out, _ = run(capsys, "approvals", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [r["id"] for r in rows] == [first, second]  # oldest first
    assert all(set(r) == APPROVAL_KEYS for r in rows)
    assert rows[0]["status"] == "pending"
    assert rows[0]["requested_at"].endswith("Z")
    assert rows[0]["expires_at"].endswith("Z")

    code, out, _ = run(capsys, "approvals", "list")
    assert code == 0
    assert "web1" in out
    assert "pending until" in out
    assert "why: nginx workers busy" in out

    code, out, err = run(capsys, "approvals", "approve", str(first), "--note", "go ahead")
    assert (code, err) == (0, "")
    assert f"approval {first} approved by alice: restart_nginx on web1" in out

    code, out, _ = run(capsys, "approvals", "list", "--json")
    assert [r["id"] for r in json.loads(out)] == [second]
    code, out, _ = run(capsys, "approvals", "list", "--json", "--all")
    everything = {r["id"]: r for r in json.loads(out)}
    assert everything[first]["status"] == "approved"
    assert everything[first]["decided_by"] == "alice"
    assert everything[first]["note"] == "go ahead"
    assert everything[first]["decided_at"].endswith("Z")
    assert everything[second]["status"] == "pending"


def test_reject_then_deciding_again_exits_2(
    recorder: Recorder, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    approval_id = hold(recorder)
    code, out, _ = run(capsys, "approvals", "reject", str(approval_id), "--note", "not now")
    assert code == 0
    assert f"approval {approval_id} rejected by alice" in out
    assert recorder.memory.approvals([approval_id])[approval_id].note == "not now"

    monkeypatch.setenv("SUDO_USER", "bob")
    code, out, err = run(capsys, "approvals", "approve", str(approval_id))
    assert code == 2
    assert out == ""
    assert err.startswith(f"autosre: error: approval {approval_id} was already rejected by alice")
    assert "Traceback" not in err
    assert recorder.memory.approvals([approval_id])[approval_id].decided_by == "alice"


def test_who_defaults_to_the_login_user(
    recorder: Recorder, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("SUDO_USER")
    monkeypatch.setattr("getpass.getuser", lambda: "carol")
    approval_id = hold(recorder)
    code, _, _ = run(capsys, "approvals", "approve", str(approval_id))
    assert code == 0
    assert recorder.memory.approvals([approval_id])[approval_id].decided_by == "carol"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["approvals", "approve", "abc"], "not a whole number: 'abc'"),
        (["approvals", "reject", "0"], "must be 1 or more: '0'"),
        (["approvals", "approve", "-5"], "error:"),
        (["approvals", "approve", "99999"], "autosre: error: no approval with id 99999"),
        (["approvals", "reject", "99999999999999999999"], "no such id"),
        (["approvals", "approve"], "the following arguments are required: id"),
        (["approvals", "list", "--limit", "0"], "must be 1 or more"),
        (["approvals"], "error:"),
        (["approvals", "frobnicate"], "invalid choice"),
    ],
)
def test_bad_input_exits_2(
    env: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, _, err = run(capsys, *argv)
    assert code == 2
    assert message in err
    assert "Traceback" not in err


def test_help_texts(env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "--help")
    assert code == 0
    assert "approvals" in out
    code, out, _ = run(capsys, "approvals", "--help")
    assert code == 0
    for name in ("list", "approve", "reject"):
        assert name in out
    code, out, _ = run(capsys, "approvals", "approve", "--help")
    assert code == 0
    assert "--note" in out


def test_incidents_show_prints_the_model_call_and_the_approval(
    recorder: Recorder, capsys: pytest.CaptureFixture[str]
) -> None:
    call = PlannerCall(
        provider="gemini",
        model="gemini-2.5-flash",
        latency=1.2345,
        attempts=2,
        prompt="p",
        reply="not json",
        input_tokens=812,
        output_tokens=37,
        error="reply is not JSON",
    )
    proposal = Proposal(
        "restart_nginx", 0.7, "CPU high", "rules", call=call, fallback="model reply unusable"
    )
    approval_id = hold(recorder, proposal=proposal)
    incident_id = recorder.memory.approvals([approval_id])[approval_id].incident_id
    run(capsys, "approvals", "approve", str(approval_id))

    code, out, _ = run(capsys, "incidents", "show", str(incident_id))
    assert code == 0
    assert "model gemini/gemini-2.5-flash, 1234 ms, 2 attempts, tokens 812 in / 37 out" in out
    assert "model reply not used: reply is not JSON" in out
    assert "fallback to rules: model reply unusable" in out
    assert f"#{approval_id} restart_nginx: approved by alice at " in out
    assert "awaiting_approval" in out

    code, out, _ = run(capsys, "incidents", "show", str(incident_id), "--json")
    detail = json.loads(out)
    assert detail["decisions"][0]["model"] == "gemini-2.5-flash"
    assert detail["decisions"][0]["fallback"] == "model reply unusable"
    assert [a["id"] for a in detail["approvals"]] == [approval_id]

    code, out, _ = run(capsys, "incidents", "list", "--status", "awaiting_approval", "--json")
    assert code == 0
    assert [i["id"] for i in json.loads(out)] == [incident_id]
