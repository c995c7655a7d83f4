"""The CLI never prints a terminal control sequence that a model, a host or a playbook wrote."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from autosre.cli import main
from autosre.commands.common import printable
from engine.incident.life import IncidentStatus
from engine.record.audit import AuditLog
from engine.record.recorder import Recorder
from engine.store import open_store
from engine.types import PlannerCall, Proposal, RunRequest, RunResult, Verdict, VerdictKind
from tests.fixtures.store import migrated_sqlite

ROOT = Path(__file__).resolve().parents[2]
TITLE = "\x1b]0;pwned\x07"  # sets the terminal's title
CLEAR = "\x1b[2J"  # clears the screen
BIDI = "\u202e\u2066"  # reverses what follows on screen
HOSTILE = f"cpu high {TITLE}{CLEAR}{BIDI} \x9b31m end"


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        (HOSTILE, "cpu high ]0;pwned[2J 31m end"),
        ("two\nlines\tand a tab", "two\nlines\tand a tab"),
        ("nul\x00 del\x7f c1\x85", "nul del c1"),
        ("plain ü € 🔑", "plain ü € 🔑"),
    ],
)
def test_printable_keeps_text_and_drops_controls(text: str, shown: str) -> None:
    assert printable(text) == shown


def test_incidents_and_approvals_are_printed_without_escapes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "escapes.db"
    monkeypatch.setenv("AUTOSRE_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("AUTOSRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("AUTOSRE_PROMETHEUS_URL", raising=False)
    sessions = open_store(migrated_sqlite(database))
    recorder = Recorder(sessions, AuditLog(tmp_path / "audit.jsonl"))
    now = time.time()
    try:
        incident = recorder.incidents.open("web1", "high_cpu", 97.0, HOSTILE, at=now, since=now)
        call = PlannerCall("gemini", "m", 0.1, 1, prompt="p", reply=HOSTILE, error=HOSTILE)
        proposal = Proposal("restart_nginx", 0.6, HOSTILE, "gemini", call=call, fallback=HOSTILE)
        verdict = Verdict(VerdictKind.AWAIT_APPROVAL, "restart_nginx", HOSTILE, "approval")
        decision = recorder.decisions.record(incident, "web1", proposal, verdict, now)
        recorder.approvals.request(
            incident, decision, "web1", "restart_nginx", HOSTILE, at=now, expires_at=now + 600
        )
        run = RunRequest("restart_nginx", "/x.yml", ("web1",))
        run_id = recorder.runs.begin(
            run, ident="r-1", artifact_dir="/tmp/r-1", trigger="manual", requested_by="t", at=now
        )
        recorder.runs.end(run_id, RunResult("r-1", "failed", 2, "/tmp/r-1", now, now, {}, HOSTILE))
        recorder.incidents.set_status(incident, IncidentStatus.OPEN, now, "note", HOSTILE)
    finally:
        sessions.kw["bind"].dispose()

    for argv in (
        ["incidents", "list"],
        ["incidents", "show", str(incident)],
        ["approvals", "list"],
        ["approvals", "list", "--all"],
        ["incidents", "show", str(incident), "--json"],
    ):
        assert main(argv) == 0
        out = capsys.readouterr().out
        if argv != ["incidents", "list"]:  # the list shows no free text
            assert "pwned" in out  # the text is shown, its control characters are not
        for control in ("\x1b", "\x07", "\x9b", "\u202e", "\u2066"):
            assert control not in out, (argv, control)
