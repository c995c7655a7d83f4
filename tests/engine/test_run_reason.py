"""Why a playbook ran by hand (engine/record/run_reason.py): the checks, the run's record
and its audit line on both real stores, migration 0011 from a 0010 store on SQLite and
PostgreSQL, and ``autosre playbook run --reason/--ticket`` with one real ansible-runner run.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from autosre.cli import main
from engine.record.recorder import Recorder
from engine.record.run_reason import (
    MAX_REASON,
    NO_REASON,
    RunReasonError,
    check_reason,
    check_ticket,
)
from engine.store import open_engine
from engine.store.migrate import downgrade, upgrade
from engine.store.models import PlaybookRun
from engine.types import RunRequest
from tests.fixtures.one_action import one_action_files
from tests.fixtures.store import migrated_sqlite

NOW = time.time()


def audit(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def request() -> RunRequest:
    return RunRequest(action="say_hello", playbook="/nowhere/hello.yml", hosts=("web1",))


# -- the checks: refused, never cleaned; what may look like code is kept as text -------------


@pytest.mark.parametrize(
    ("reason", "problem"),
    [
        ("", "reason: is required"),
        ("   ", "reason: is required"),
        ("x" * (MAX_REASON + 1), "reason: is too long"),
        ("colour \x1b[31mred", "reason: must be printable"),
        ("nul \x00 byte", "reason: must be printable"),
        ("two\nlines", "reason: must be printable"),
        ("bidi \u202e trick", "reason: must be printable"),
    ],
)
def test_a_bad_reason_is_refused_naming_the_field(reason: str, problem: str) -> None:
    with pytest.raises(RunReasonError, match=problem) as refused:
        check_reason(reason, required=True)
    assert refused.value.field == "reason"


@pytest.mark.parametrize(
    "reason", ["{{ 7*7 }}", "<script>alert(1)</script>", "disk full — ça déborde", "x" * 200]
)
def test_a_reason_is_kept_as_typed(reason: str) -> None:
    assert check_reason(f"  {reason} ", required=True) == reason


def test_no_reason_where_none_is_required_is_recorded_as_none_given() -> None:
    assert check_reason(None, required=False) == NO_REASON == "(none given)"
    with pytest.raises(RunReasonError, match="reason: is required"):
        check_reason(None, required=True)


@pytest.mark.parametrize("ticket", ["INC-1234", "JIRA:OPS-7", "gh#42", "a/b.c_d", "x" * 64])
def test_good_tickets(ticket: str) -> None:
    assert check_ticket(ticket) == ticket


@pytest.mark.parametrize("ticket", ["INC 1234", "x" * 65, "<b>", "INC-1\x1b[0m", "é-1", "a\nb"])
def test_bad_tickets_are_refused_naming_the_field(ticket: str) -> None:
    with pytest.raises(RunReasonError, match="ticket: must be") as refused:
        check_ticket(ticket)
    assert refused.value.field == "ticket"
    assert check_ticket("") is None and check_ticket(None) is None


# -- the record: on the run and in its start's audit line; the engine's runs have neither ----


def test_the_run_and_its_audit_line_carry_the_reason_and_ticket(
    recorder: Recorder, sessions: sessionmaker[Session], audit_path: Path
) -> None:
    by_hand = recorder.runs.begin(
        request(),
        ident="run-hand",
        artifact_dir="/nowhere",
        trigger="manual",
        requested_by="otto",
        at=NOW,
        reason="{{ 7*7 }} <script>",
        ticket="INC-1234",
    )
    engine = recorder.runs.begin(
        request(), ident="run-engine", artifact_dir="/n", trigger="engine", requested_by="e", at=NOW
    )
    with sessions() as session:
        hand = session.get_one(PlaybookRun, by_hand)
        assert (hand.reason, hand.ticket) == ("{{ 7*7 }} <script>", "INC-1234")
        auto = session.get_one(PlaybookRun, engine)
        assert (auto.reason, auto.ticket) == (None, None)
    started = {line["run_id"]: line for line in audit(audit_path) if line["kind"] == "run_started"}
    assert started[by_hand]["data"]["reason"] == "{{ 7*7 }} <script>"
    assert started[by_hand]["data"]["ticket"] == "INC-1234"
    assert "reason" not in started[engine]["data"] and "ticket" not in started[engine]["data"]


# -- migration 0011: a 0010 store to head and back, on both backends ---------------------------


def test_migration_0011_adds_reason_and_ticket_to_a_0010_store(empty_store_url: str) -> None:
    engine = open_engine(empty_store_url)
    try:
        upgrade(engine, "0010")
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO playbook_runs (ident, action, playbook, hosts, check_mode,"
                    " trigger, requested_by, extra_var_names, status, stats, artifact_dir,"
                    " created_at) VALUES ('run-old', 'fix', 'fix.yml', '[\"web1\"]', false,"
                    " 'manual', 'bob', '[]', 'successful', '{}', '/n', :at)"
                ),
                {"at": "2026-11-30 10:00:00+00:00"},
            )
        upgrade(engine)
        assert {"reason", "ticket"} <= {
            c["name"] for c in inspect(engine).get_columns("playbook_runs")
        }
        with engine.connect() as connection:
            row = connection.execute(text("SELECT ident, reason, ticket FROM playbook_runs")).one()
        assert tuple(row) == ("run-old", None, None)  # runs from before say nothing
        downgrade(engine, "0010")
        assert "reason" not in {c["name"] for c in inspect(engine).get_columns("playbook_runs")}
        upgrade(engine)
    finally:
        engine.dispose()


# -- the CLI: --reason optional (scripts keep working), a bad one exits 2 before anything -------


def test_the_cli_records_the_reason_or_none_given_and_refuses_a_bad_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = migrated_sqlite(tmp_path / "data" / "autosre.db")
    for name, value in one_action_files(tmp_path, hosts=("web1",)).items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AUTOSRE_DATABASE_URL", raising=False)
    monkeypatch.setenv("SUDO_USER", "casey")
    base = ["playbook", "run", "say_hello", "--limit", "web1", "--check"]
    for extra, problem in (
        (["--reason", "\x1b[31mred"], "reason: must be printable"),
        (["--reason", "x" * 201], "reason: is too long"),
        (["--reason", "ok", "--ticket", "INC 1"], "ticket: must be"),
    ):
        capsys.readouterr()
        assert main([*base, *extra]) == 2, extra
        err = capsys.readouterr().err
        assert problem in err and "\x1b" not in err and "Traceback" not in err, err

    assert main([*base, "--ticket", "INC-77"]) == 0, capsys.readouterr()
    engine = open_engine(url)
    try:
        with Session(engine) as session:
            runs = session.scalars(select(PlaybookRun)).all()
    finally:
        engine.dispose()
    assert [(r.requested_by, r.reason, r.ticket, r.status) for r in runs] == [
        ("casey", NO_REASON, "INC-77", "successful")
    ]
    audit_log = tmp_path / "data" / "audit.jsonl"
    started = [line for line in audit(audit_log) if line["kind"] == "run_started"]
    assert [line["data"].get("reason") for line in started] == [NO_REASON]
