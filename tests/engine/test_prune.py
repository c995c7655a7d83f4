"""Retention on both real backends: old closed incidents go with every row that depends on
them, nothing active or in flight is touched, run dirs go by age and count and never
through a symlink, and the dry run counts exactly what the real run then removes."""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from autosre.cli import main
from engine import prune_incidents
from engine.components import Components
from engine.incident.life import IncidentStatus
from engine.inventory import Inventory
from engine.policy.load import load_policy, parse_policy, read_policy_data
from engine.policy.retention_schema import Retention
from engine.policy.schema import FailureMemory, Policy
from engine.prune import plan_prune, prune, scheduled_prune
from engine.prune_incidents import TABLES
from engine.prune_report import PruneReport, human_bytes
from engine.record.recorder import Recorder
from engine.settings import load_settings
from engine.store.alert_events import AlertEventRow
from engine.store.models import (
    ApprovalRow,
    Base,
    Decision,
    DisabledHostRow,
    Event,
    Incident,
    PlaybookRun,
)
from engine.store.outbox import NotificationRow
from engine.timeutil import to_dt
from engine.types import HostRunStats, Proposal, RunRequest, RunResult, Verdict, VerdictKind
from tests.fixtures.store import migrated_sqlite
from webui.artifacts import run_artifacts

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400.0
NOW = 1_750_000_000.0
OLD = NOW - 200 * DAY  # beyond the default 180 days (and 30 days for artifacts)
RECENT = NOW - 2 * DAY
PROPOSAL = Proposal("restart_nginx", 0.9, "CPU is high", "rules")
EXECUTE = Verdict(VerdictKind.EXECUTE, "restart_nginx", "first rung", "ladder")
MODELS: dict[str, Any] = {
    "incidents": Incident,
    "decisions": Decision,
    "playbook_runs": PlaybookRun,
    "events": Event,
    "approvals": ApprovalRow,
    "notifications": NotificationRow,
    "alert_events": AlertEventRow,
    "disabled_hosts": DisabledHostRow,
}


def lab_policy(**retention: Any) -> Policy:
    policy = load_policy(ROOT / "policies" / "lab.yaml")
    return policy.model_copy(update={"retention": Retention.model_validate(retention)})


# -- a fleet's history ------------------------------------------------------------------


@dataclass
class History:
    """Incident ids by letter and run idents, as built by ``history``."""

    ids: dict[str, int]
    runs_dir: Path


def _run_dir(runs_dir: Path, ident: str, size: int = 1000) -> None:
    folder = runs_dir / ident / "artifacts" / ident
    folder.mkdir(parents=True)
    (folder / "stdout").write_bytes(b"x" * size)


def _begin(
    recorder: Recorder, runs_dir: Path, ident: str, pairs: list[tuple[int, int]], *hosts: str
) -> int:
    _run_dir(runs_dir, ident)
    request = RunRequest(action="restart_nginx", playbook="/p/restart_nginx.yml", hosts=hosts)
    return recorder.runs.begin(
        request,
        ident=ident,
        artifact_dir=str(runs_dir / ident),
        trigger="manual" if not pairs else "engine",
        requested_by="engine",
        at=OLD + 4,
        decisions=pairs,
    )


def _end(recorder: Recorder, run_id: int, ident: str, *hosts: str) -> None:
    stats = {h: HostRunStats(ok=3) for h in hosts}
    recorder.runs.end(
        run_id, RunResult(ident, "successful", 0, ident, OLD + 4, OLD + 9, stats=stats)
    )


def _incident(recorder: Recorder, host: str, at: float = OLD) -> tuple[int, int]:
    incident = recorder.incidents.open(host, "high_cpu", 97.0, "CPU high", at=at, since=at - 10)
    return incident, recorder.decisions.record(incident, host, PROPOSAL, EXECUTE, at + 1)


def _close(recorder: Recorder, incident: int, at: float = OLD + 60) -> None:
    recorder.incidents.set_status(
        incident, IncidentStatus.RESOLVED, at, "recovered", "back to normal", close=True
    )


def history(recorder: Recorder, runs_dir: Path) -> History:
    """Old closed incidents that go (a, b, c, d) and everything that must stay (e to i)."""
    ids: dict[str, int] = {}
    # a: approved, run, paged, linked to an alert, took its host out (re-enabled since).
    a, da = _incident(recorder, "web1")
    approval = recorder.approvals.request(
        a, da, "web1", "restart_nginx", "why", at=OLD + 2, expires_at=OLD + 900
    )
    recorder.approvals.decide(approval, approve=True, by="ann", at=OLD + 3)
    _end(recorder, _begin(recorder, runs_dir, "run-a", [(a, da)], "web1"), "run-a", "web1")
    _close(recorder, a)
    recorder.maintenance.take_out("web1", "flapping", at=OLD + 61, incident_id=a)
    recorder.maintenance.enable("web1", by="ann", at=OLD + 62)
    with recorder.sessions.begin() as session:
        session.add(
            NotificationRow(
                incident_id=a,
                channel="team",
                event="trigger",
                payload={},
                status="sent",
                attempts=1,
                next_attempt_at=to_dt(OLD),
                created_at=to_dt(OLD),
                sent_at=to_dt(OLD + 1),
            )
        )
        for fingerprint, incident in (("f-a", a), ("f-none", None)):
            session.add(
                AlertEventRow(
                    fingerprint=fingerprint,
                    status="firing",
                    alertname="HighCPU",
                    starts_at=to_dt(OLD),
                    labels={},
                    host="web1",
                    kind="high_cpu",
                    outcome="linked" if incident else "ignored",
                    incident_id=incident,
                    received_at=to_dt(OLD),
                    last_received_at=to_dt(OLD),
                )
            )
    # b and c: one run on both hosts; both go, and the run with them.
    b, db = _incident(recorder, "web2")
    c, dc = _incident(recorder, "web3")
    bc = _begin(recorder, runs_dir, "run-bc", [(b, db), (c, dc)], "web2", "web3")
    _end(recorder, bc, "run-bc", "web2", "web3")
    _close(recorder, b)
    _close(recorder, c)
    # d goes, but its run stays: it is also active incident e's.
    d, dd = _incident(recorder, "web4")
    e, de = _incident(recorder, "web5")
    de_run = _begin(recorder, runs_dir, "run-de", [(d, dd), (e, de)], "web4", "web5")
    _end(recorder, de_run, "run-de", "web4", "web5")
    _close(recorder, d)
    recorder.incidents.set_status(e, IncidentStatus.OPEN, OLD + 60, "not_recovered", "high")
    # f: escalated, never closed; g: closed, but its host is still held out by it.
    f, _ = _incident(recorder, "web6")
    recorder.incidents.set_status(f, IncidentStatus.ESCALATED, OLD + 10, "escalated", "paged")
    g, _ = _incident(recorder, "web7")
    _close(recorder, g)
    recorder.maintenance.take_out("web7", "flapping", at=OLD + 61, incident_id=g)
    # h: closed two days ago; i: closed, but its run is still in flight.
    h, _ = _incident(recorder, "web8", at=RECENT - 100)
    _close(recorder, h, at=RECENT)
    i, di = _incident(recorder, "web9")
    _begin(recorder, runs_dir, "run-i", [(i, di)], "web9")
    _close(recorder, i)
    # m: an old run by hand, no incident: its dir goes by age, its row stays.
    _end(recorder, _begin(recorder, runs_dir, "run-m", [], "web1"), "run-m", "web1")
    ids.update(a=a, b=b, c=c, d=d, e=e, f=f, g=g, h=h, i=i)
    return History(ids, runs_dir)


def snapshot(sessions: sessionmaker[Session]) -> dict[str, set[int | str]]:
    with sessions() as session:
        out: dict[str, set[int | str]] = {}
        for table, model in MODELS.items():
            key = model.host if model is DisabledHostRow else model.id
            out[table] = set(session.scalars(select(key)))
        return out


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "runs"
    folder.mkdir()
    return folder


@pytest.fixture
def built(recorder: Recorder, runs_dir: Path) -> History:
    return history(recorder, runs_dir)


def run_prune(recorder: Recorder, runs_dir: Path, policy: Policy, **kw: Any) -> PruneReport:
    return prune(
        recorder.sessions, runs_dir, policy, journal=recorder.journal, now=NOW, by="ann", **kw
    )


# -- incidents --------------------------------------------------------------------------


def test_old_closed_incidents_go_with_every_dependent_row_and_nothing_else(
    recorder: Recorder, built: History, audit_path: Path
) -> None:
    sessions, ids = recorder.sessions, built.ids
    before = snapshot(sessions)
    gone = {ids[k] for k in "abcd"}
    with sessions() as session:
        gone_runs = set(
            session.scalars(
                select(PlaybookRun.id).where(PlaybookRun.ident.in_(["run-a", "run-bc"]))
            )
        )
        assert len(gone_runs) == 2
        expected = {
            "incidents": gone,
            "decisions": set(
                session.scalars(select(Decision.id).where(Decision.incident_id.in_(gone)))
            ),
            "playbook_runs": gone_runs,
            "events": set(
                session.scalars(
                    select(Event.id).where(
                        Event.incident_id.in_(gone) | Event.run_id.in_(gone_runs)
                    )
                )
            ),
            "approvals": set(session.scalars(select(ApprovalRow.id))),
            "notifications": set(session.scalars(select(NotificationRow.id))),
            "alert_events": set(
                session.scalars(
                    select(AlertEventRow.id).where(AlertEventRow.incident_id == ids["a"])
                )
            ),
            "disabled_hosts": set(),
        }

    report = run_prune(recorder, built.runs_dir, lab_policy())

    after = snapshot(sessions)
    for table in MODELS:
        removed = before[table] - after[table]
        if table == "events":  # the prune's own event is the one row added
            assert len(after[table] - before[table]) == 1
        assert removed == expected[table], table
    assert report.incidents == 4
    assert report.rows == {t: len(expected[t]) for t in TABLES}
    with sessions() as session:
        # The host re-enabled since keeps its row, without its pointer; web7's stays held.
        held = {r.host: r.incident_id for r in session.scalars(select(DisabledHostRow))}
        assert held == {"web1": None, "web7": ids["g"]}
        kept_runs = set(session.scalars(select(PlaybookRun.ident)))
        assert kept_runs == {"run-de", "run-i", "run-m"}
        # The active incident keeps its decision on the shared run.
        assert session.scalar(select(Decision.run_id).where(Decision.incident_id == ids["e"]))
    assert no_orphans(sessions) == []
    # Run dirs: those of deleted runs and the old manual one; never e's or the one in flight.
    assert sorted(p.name for p in built.runs_dir.iterdir()) == ["run-de", "run-i"]
    assert report.run_dirs == 3 and report.bytes == 3000
    # One event, in the store and the audit log, says who pruned what.
    line = json.loads(audit_path.read_text(encoding="utf-8").splitlines()[-1])
    assert line["kind"] == "pruned"
    assert line["data"]["by"] == "ann" and line["data"]["incidents"] == 4
    assert line["data"]["run_dirs"] == 3 and line["data"]["bytes"] == 3000
    assert "ann pruned 3 run dirs" in line["message"]


def no_orphans(sessions: sessionmaker[Session]) -> list[str]:
    """Every foreign key whose value names no row (the schema's own list of them)."""
    found = []
    with sessions() as session:
        for table in Base.metadata.sorted_tables:
            for fk in table.foreign_keys:
                parent = fk.column
                dangling = (
                    select(fk.parent)
                    .where(fk.parent.is_not(None), fk.parent.not_in(select(parent)))
                    .limit(1)
                )
                if session.execute(dangling).first() is not None:
                    found.append(f"{table.name}.{fk.parent.name}")
    return found


def test_every_table_pointing_at_what_goes_is_handled() -> None:
    """A new table referring to incidents, decisions or runs must be added to the prune."""
    going = {"incidents", "decisions", "playbook_runs"}
    referring = {
        table.name
        for table in Base.metadata.sorted_tables
        for fk in table.foreign_keys
        if fk.column.table.name in going
    }
    assert referring <= set(TABLES) | {"disabled_hosts"}


def test_active_incidents_and_runs_in_flight_stay_whatever_their_age(
    recorder: Recorder, built: History
) -> None:
    policy = lab_policy(artifacts={"max_age": "1h", "keep": 1}, incidents={"max_age": "1h"})
    # A failure memory of 3 days: h, closed 2 days ago, still counts for the engine.
    remembers = policy.model_copy(
        update={
            "remediation": policy.remediation.model_copy(
                update={"failure_memory": FailureMemory(window=3 * DAY)}
            )
        }
    )
    ids = built.ids
    report = run_prune(recorder, built.runs_dir, remembers)
    assert report.incidents == 4
    assert left_incidents(recorder) == {ids[k] for k in "efghi"}

    report = run_prune(recorder, built.runs_dir, policy)
    assert report.incidents == 1
    # The active, the escalated, the held-out and the one with a run in flight stay.
    assert left_incidents(recorder) == {ids[k] for k in "efgi"}
    assert sorted(p.name for p in built.runs_dir.iterdir()) == ["run-de", "run-i"]


def left_incidents(recorder: Recorder) -> set[int]:
    with recorder.sessions() as session:
        return set(session.scalars(select(Incident.id)))


def test_dry_run_removes_nothing_and_counts_what_the_real_run_removes(
    recorder: Recorder, built: History, audit_path: Path
) -> None:
    orphan = built.runs_dir / "run-orphan"
    orphan.mkdir()
    (orphan / "f").write_bytes(b"y" * 77)
    os.utime(orphan, (OLD, OLD))
    before = snapshot(recorder.sessions)
    audit_before = audit_path.read_text(encoding="utf-8")
    dirs_before = sorted(p.name for p in built.runs_dir.iterdir())

    dry = run_prune(recorder, built.runs_dir, lab_policy(), dry_run=True)
    assert snapshot(recorder.sessions) == before
    assert sorted(p.name for p in built.runs_dir.iterdir()) == dirs_before
    assert audit_path.read_text(encoding="utf-8") == audit_before  # nothing recorded

    real = run_prune(recorder, built.runs_dir, lab_policy())
    assert dry.dry_run and not real.dry_run
    assert (dry.run_dirs, dry.bytes, dry.incidents, dry.rows) == (
        real.run_dirs,
        real.bytes,
        real.incidents,
        real.rows,
    )
    assert (real.run_dirs, real.bytes) == (4, 3077)
    assert dry.oldest_run_dir == real.oldest_run_dir == OLD + 4
    assert dry.oldest_incident == real.oldest_incident == OLD


def test_small_batches_keep_incidents_that_share_a_run_together(
    recorder: Recorder, built: History, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(prune_incidents, "BATCH", 1)
    plan = plan_prune(recorder.sessions, built.runs_dir, lab_policy(), now=NOW)
    ids = built.ids
    groups = sorted(sorted(batch.incidents) for batch in plan.batches)
    assert groups == sorted([[ids["a"]], sorted([ids["b"], ids["c"]]), [ids["d"]]])
    real = run_prune(recorder, built.runs_dir, lab_policy())
    assert real.rows == plan.rows and real.incidents == 4
    assert no_orphans(recorder.sessions) == []


# -- run dirs ---------------------------------------------------------------------------


def test_keep_keeps_the_newest_run_dirs(recorder: Recorder, runs_dir: Path) -> None:
    created = {}
    for n in range(5):
        ident = f"run-{n}"
        run_id = _begin(recorder, runs_dir, ident, [], "web1")
        _end(recorder, run_id, ident, "web1")
        created[ident] = RECENT + n
        with recorder.sessions.begin() as session:
            session.execute(
                update(PlaybookRun)
                .where(PlaybookRun.id == run_id)
                .values(created_at=to_dt(RECENT + n))
            )
    _begin(recorder, runs_dir, "run-flight", [], "web1")  # oldest, but still running
    # No row yet: maybe being recorded right now; the newest dir, one of the 3 kept.
    young = runs_dir / "run-unrecorded"
    young.mkdir()
    os.utime(young, (NOW - 60, NOW - 60))

    report = run_prune(recorder, runs_dir, lab_policy(artifacts={"max_age": None, "keep": 3}))

    assert sorted(p.name for p in runs_dir.iterdir()) == [
        "run-3",
        "run-4",
        "run-flight",
        "run-unrecorded",
    ]
    assert report.run_dirs == 3
    with recorder.sessions() as session:  # the runs keep their rows
        assert len(session.scalars(select(PlaybookRun.id)).all()) == 6
    # The web UI finds no artifacts for a pruned run, rather than failing.
    gone = {"artifact_dir": str(runs_dir / "run-0"), "ident": "run-0"}
    assert run_artifacts(gone, runs_dir) is None


def test_a_symlink_in_runs_is_never_followed(recorder: Recorder, tmp_path: Path) -> None:
    runs_dir = tmp_path / "runs"
    outside = tmp_path / "precious"
    outside.mkdir()
    (outside / "keep.txt").write_text("do not delete")
    runs_dir.mkdir()
    (runs_dir / "run-evil").symlink_to(outside, target_is_directory=True)
    os.utime(runs_dir / "run-evil", (OLD, OLD), follow_symlinks=False)
    inner = runs_dir / "run-old"
    inner.mkdir()
    (inner / "link").symlink_to(outside, target_is_directory=True)
    (inner / "file-link").symlink_to(outside / "keep.txt")
    os.utime(inner, (OLD, OLD))

    report = run_prune(recorder, runs_dir, lab_policy())

    assert (outside / "keep.txt").read_text() == "do not delete"
    assert report.refused == ["run-evil"]
    assert (runs_dir / "run-evil").is_symlink()
    assert not inner.exists() and report.run_dirs == 1
    assert report.bytes == 0  # a link's target is neither followed nor counted


def test_nothing_to_prune_records_nothing(recorder: Recorder, runs_dir: Path) -> None:
    report = run_prune(recorder, runs_dir / "missing", lab_policy())
    assert not report.removed_anything and report.rows["incidents"] == 0
    with recorder.sessions() as session:
        assert session.scalars(select(Event.id)).all() == []


# -- the policy -------------------------------------------------------------------------


def test_retention_defaults_and_limits() -> None:
    policy = lab_policy()
    assert policy.retention.artifacts.max_age == 30 * DAY
    assert policy.retention.artifacts.keep == 2000
    assert policy.retention.incidents.max_age == 180 * DAY
    data = read_policy_data(ROOT / "policies" / "lab.yaml")
    for section, reason in (
        ({"artifacts": {"keep": 0}}, "retention.artifacts.keep"),
        ({"artifacts": {"max_age": "0"}}, "retention.artifacts.max_age"),
        ({"incidents": {"max_age": "5m"}}, "retention.incidents.max_age"),
        ({"incidents": {"max_age": "soon"}}, "retention.incidents.max_age"),
        ({"incidents": {"keep": 3}}, "retention.incidents.keep"),
    ):
        with pytest.raises(ValueError, match=reason):
            parse_policy({**data, "retention": section}, source="p.yaml")
    unlimited = parse_policy({**data, "retention": {"incidents": {"max_age": None}}})
    assert unlimited.retention.incidents.max_age is None


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 5 * 2**20, 3 * 2**40)] == [
        "0 B",
        "1023 B",
        "1.0 KiB",
        "5.0 MiB",
        "3072.0 GiB",
    ]


# -- the engine's periodic prune ------------------------------------------------------


def test_scheduled_prune_prunes_and_a_failure_is_one_log_line(
    store_url: str, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    env = {
        "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
        "AUTOSRE_DATABASE_URL": store_url,
        "AUTOSRE_POLICY": str(ROOT / "policies" / "lab.yaml"),
    }
    old = tmp_path / "data" / "runs" / "run-old"
    old.mkdir(parents=True)
    os.utime(old, (1.0, 1.0))
    components = Components(load_settings(env), inventory=Inventory(tmp_path, {}))
    try:
        with caplog.at_level(logging.INFO, logger="autosre.prune"):
            report = scheduled_prune(components)
        assert report is not None and report.run_dirs == 1 and not old.exists()
        assert "engine pruned 1 run dirs" in caplog.text
        components.sessions.kw["bind"].dispose()
        bad = Components(
            load_settings({**env, "AUTOSRE_POLICY": str(tmp_path / "none.yaml")}),
            inventory=Inventory(tmp_path, {}),
        )
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="autosre.prune"):
            assert scheduled_prune(bad) is None
        bad.close()
        assert "prune failed" in caplog.text and "Traceback" not in caplog.text
    finally:
        components.close()


# -- the command ------------------------------------------------------------------------


@pytest.fixture
def cli_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("AUTOSRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUTOSRE_POLICY", str(ROOT / "policies" / "lab.yaml"))
    monkeypatch.setenv("AUTOSRE_INVENTORY", str(ROOT / "inventory" / "lab.yml"))
    monkeypatch.delenv("AUTOSRE_DATABASE_URL", raising=False)
    monkeypatch.setenv("SUDO_USER", "ann")
    migrated_sqlite(tmp_path / "data" / "autosre.db")
    yield tmp_path / "data" / "runs"


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def _old_dirs(runs_dir: Path, count: int) -> None:
    for n in range(count):
        folder = runs_dir / f"run-{n:05d}"
        folder.mkdir(parents=True)
        (folder / "stdout").write_bytes(b"z" * 10)
        os.utime(folder, (1.0, 1.0))


def test_prune_command_dry_run_then_json(
    cli_env: Path, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    _old_dirs(cli_env, 3)
    (tmp_path / "outside").mkdir()
    (cli_env / "run-link").symlink_to(tmp_path / "outside")

    code, out, err = cli(capsys, "prune", "--dry-run")
    assert code == 0
    assert "dry run: nothing was removed" in out
    assert "run dirs: would remove 3 (30 B)" in out
    assert "incidents: would remove 0 (0 rows: none)" in out
    assert "run-link is a symlink: left alone" in err
    assert len(list(cli_env.iterdir())) == 4

    code, out, _ = cli(capsys, "prune", "--json")
    assert code == 0
    found = json.loads(out)
    assert (found["run_dirs"], found["bytes"], found["by"]) == (3, 30, "ann")
    assert found["refused"] == ["run-link"] and not found["dry_run"]
    assert [p.name for p in cli_env.iterdir()] == ["run-link"]
    assert (tmp_path / "outside").is_dir()
    audit = (cli_env.parent / "audit.jsonl").read_text(encoding="utf-8").splitlines()
    assert (
        json.loads(audit[-1])["message"] == "ann pruned 3 run dirs (30 B) and 0 incidents (0 rows)"
    )


def test_prune_command_tells_its_progress(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _old_dirs(cli_env, 1001)
    code, out, err = cli(capsys, "prune")
    assert code == 0
    assert "prune: 1000 of 1001 run dirs removed" in err
    assert "run dirs: removed 1001" in out
    assert not any(cli_env.iterdir())


@pytest.mark.parametrize("argv", [["prune", "--force"], ["prune", "now"], ["prune", "--json=1"]])
def test_prune_command_usage_errors_exit_2(
    cli_env: Path, capsys: pytest.CaptureFixture[str], argv: list[str]
) -> None:
    code, _, err = cli(capsys, *argv)
    assert code == 2 and "error:" in err and "Traceback" not in err


def test_prune_command_refuses_a_bad_retention_policy(
    cli_env: Path,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _old_dirs(cli_env, 1)
    text = (ROOT / "policies" / "lab.yaml").read_text(encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text(text + "\nretention:\n  artifacts: {keep: 0}\n", encoding="utf-8")
    monkeypatch.setenv("AUTOSRE_POLICY", str(bad))
    code, _, err = cli(capsys, "prune")
    assert code == 2
    assert "retention.artifacts.keep" in err and "Traceback" not in err
    assert len(list(cli_env.iterdir())) == 1  # nothing removed on a bad policy
    code, _, err = cli(capsys, "policy", "check", str(bad))
    assert code == 2 and "retention.artifacts.keep" in err


def test_report_times_are_iso() -> None:
    report = PruneReport(False, "ann", NOW, 0, 0, 0, {}, None, OLD)
    shown = report.as_dict()
    assert shown["at"] == datetime.fromtimestamp(NOW, UTC).isoformat().replace("+00:00", "Z")
    assert shown["oldest_run_dir"] is None


def test_prune_command_on_an_unreadable_runs_dir_exits_2(
    cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cli_env.write_text("not a folder")
    code, _, err = cli(capsys, "prune")
    assert code == 2 and "prune stopped" in err and "Traceback" not in err


def test_the_commented_example_in_the_default_policy_is_the_defaults() -> None:
    text = (ROOT / "policies" / "default.yaml").read_text(encoding="utf-8")
    start = text.index("# retention:")
    lines = [line.removeprefix("# ") for line in text[start:].splitlines()]
    example = yaml.safe_load("\n".join(line for line in lines if not line.startswith("#")))
    data = read_policy_data(ROOT / "policies" / "default.yaml")
    assert parse_policy({**data, **example}).retention == Retention()
