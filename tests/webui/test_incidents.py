"""GET /incidents, one incident's page and its runs' artifacts, on a real store.

Rows come from engine.record.recorder.Recorder; each run's artifact directory is a real one under
the data dir's runs/, laid out as ansible-runner leaves it.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.incident.life import IncidentStatus
from engine.plan.rules import RulesPlanner, skipped_rungs
from engine.plan.situation import Situation
from engine.record.audit import AuditLog
from engine.record.recorder import Recorder
from engine.types import (
    Attempt,
    HostHistory,
    HostRunStats,
    HostState,
    HostStatus,
    PlannerCall,
    Proposal,
    RunRequest,
    RunResult,
    Verdict,
    VerdictKind,
    Verification,
)
from webui.artifacts import strip_ansi
from webui.incident_timeline import duration

BOTH_BACKENDS = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
ESCAPED_SCRIPT = "&lt;script&gt;alert(1)&lt;/script&gt;"
ESCAPED_IMG = "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;"
STDOUT = (
    "\x1b[0;32mok: [web1]\x1b[0m\n"
    "\x1b[0;33mchanged: [web1] => restarted\x1b[0m\x1b]0;title\x07\n"
    f"{SCRIPT}\n{IMG}\n"
)


@pytest.fixture
def recorder(sessions: sessionmaker[Session], tmp_path: Path) -> Recorder:
    return Recorder(sessions, AuditLog(tmp_path / "audit" / "audit.jsonl"))


@pytest.fixture
def runs_dir(app: Flask) -> Path:
    return Path(app.config["AUTOSRE_DATA_DIR"]) / "runs"


def make_artifacts(runs_dir: Path, ident: str) -> Path:
    """An ansible-runner artifact dir: job_events, stdout (with escape codes), status, rc."""
    folder = runs_dir / ident / "artifacts" / ident
    (folder / "job_events").mkdir(parents=True)
    events = [
        {"counter": 1, "event": "playbook_on_start", "event_data": {}},
        {
            "counter": 2,
            "event": "runner_on_ok",
            "event_data": {
                "task": "Gather facts",
                "host": "web1",
                "res": {"changed": False},
                "duration": 1.25,
            },
        },
        {
            "counter": 3,
            "event": "runner_on_ok",
            "event_data": {"task": "Restart nginx", "host": "web1", "res": {"changed": True}},
        },
        {
            "counter": 4,
            "event": "runner_on_failed",
            "event_data": {"task": f"Check {SCRIPT}", "host": "web2", "res": {}},
        },
    ]
    for event in events:
        name = f"{event['counter']}-{event['event']}.json"
        (folder / "job_events" / name).write_text(json.dumps(event))
    (folder / "job_events" / "5-partial.json").write_text("{half")
    (folder / "stdout").write_text(STDOUT)
    (folder / "status").write_text("successful")
    (folder / "rc").write_text("0")
    return folder


def story(recorder: Recorder, runs_dir: Path, *, host: str = "web1") -> tuple[int, int]:
    """Detected, a model's proposal overridden by policy, a run, verified, resolved."""
    now = time.time() - 3600
    incident = recorder.incidents.open(
        host, "high_cpu", 97.5, f"CPU 97.5% {IMG}", at=now, since=now - 30
    )
    call = PlannerCall("gemini", "gemini-2.5-flash", 0.8, 1, "prompt", "{}")
    proposal = Proposal("restart_nginx", 0.87, f"nginx workers busy {SCRIPT}", "gemini", call)
    verdict = Verdict(
        VerdictKind.EXECUTE, "restart_nginx", "ladder's first rung", "ladder", overridden=True
    )
    decision = recorder.decisions.record(incident, host, proposal, verdict, now + 1)
    folder = make_artifacts(runs_dir, f"run-{incident}")
    run = recorder.runs.begin(
        RunRequest("restart_nginx", "/p/restart_nginx.yml", (host,)),
        ident=f"run-{incident}",
        artifact_dir=str(folder),
        trigger="engine",
        requested_by="engine",
        at=now + 2,
        decisions=[(decision, incident)],
    )
    stats = {host: HostRunStats(ok=3, changed=1)}
    recorder.runs.end(
        run, RunResult(f"run-{incident}", "successful", 0, str(folder), now + 2, now + 9, stats)
    )
    recorder.decisions.verified(
        decision, Verification(host, True, 22.0, now + 40, "CPU 22.0% below 70%")
    )
    recorder.incidents.set_status(
        incident, IncidentStatus.RESOLVED, now + 40, "resolved", "recovered", value_after=22.0,
        close=True,
    )  # fmt: skip
    return incident, run


def assert_no_inline_code(page: str) -> None:
    for tag in re.findall(r"<script[^>]*>", page):
        assert " src=" in tag, tag
    assert " style=" not in page
    assert not re.search(r"<[^>]*\son[a-z]+\s*=", page)


@BOTH_BACKENDS
def test_viewer_sees_the_list_the_incident_and_its_artifacts(
    viewer_client: FlaskClient, recorder: Recorder, runs_dir: Path
) -> None:
    incident, run = story(recorder, runs_dir)

    listing = viewer_client.get("/incidents")
    assert listing.status_code == 200
    assert f'href="/incidents/{incident}"' in listing.text
    assert 'class="badge status-resolved"' in listing.text
    assert "97.5% → 22.0%" in listing.text
    assert 'href="/static/pages.css"' in listing.text

    page = viewer_client.get(f"/incidents/{incident}")
    assert page.status_code == 200
    text = page.text
    for expected in (
        "detected",  # the timeline
        "gemini-2.5-flash",
        "0.87",
        "nginx workers busy",
        "ladder&#39;s first rung",
        "policy override",
        "recovered",  # the verification's outcome
        "CPU 22.0% below 70%",
        "Gather facts",
        "1.25 s",
        "Restart nginx",
        'ao-badge ao-changed">changed',
        'ao-badge ao-failed">failed',
        f'href="/incidents/{incident}/runs/{run}/artifacts.tar.gz"',
        "ok: [web1]",
        "changed: [web1] =&gt; restarted",
    ):
        assert expected in text, expected
    assert "\x1b" not in text
    assert "[0;32m" not in text
    assert "title\x07" not in text
    assert_no_inline_code(text)


def test_fleet_text_is_escaped_everywhere(
    viewer_client: FlaskClient, recorder: Recorder, runs_dir: Path
) -> None:
    incident, _ = story(recorder, runs_dir, host=f"web{IMG}{SCRIPT}")
    for url in ("/incidents", f"/incidents/{incident}", f"/incidents?q={IMG[:6]}"):
        page = viewer_client.get(url)
        assert page.status_code == 200, url
        assert SCRIPT not in page.text, url
        assert "<img" not in page.text, url
        assert ESCAPED_SCRIPT in page.text or url.startswith("/incidents?"), url
        assert ESCAPED_IMG in page.text, url
        assert_no_inline_code(page.text)


def test_signed_out_goes_to_login(client: FlaskClient, recorder: Recorder, runs_dir: Path) -> None:
    incident, run = story(recorder, runs_dir)
    for url in (
        "/incidents",
        f"/incidents/{incident}",
        f"/incidents/{incident}/runs/{run}/artifacts.tar.gz",
    ):
        response = client.get(url)
        assert response.status_code == 302, url
        assert response.headers["Location"].startswith("/login?next="), url


@pytest.mark.parametrize(
    "query",
    [
        "status=weird",
        "from=yesterday",
        "to=2024-13-01",
        "from=2024-02-02&to=2024-02-01",
        "before=abc",
        "before=-1",
        "before=99999999999999999999999",
        "q=" + "x" * 300,
        "q=a%00b",
        "host=web%0A1",
    ],
)
def test_bad_filters_are_a_400_page(viewer_client: FlaskClient, query: str) -> None:
    response = viewer_client.get(f"/incidents?{query}")
    assert response.status_code == 400
    assert "400 · Bad Request" in response.text


def test_bad_ids_are_a_404_page(
    viewer_client: FlaskClient, recorder: Recorder, runs_dir: Path, tmp_path: Path
) -> None:
    incident, run = story(recorder, runs_dir)
    other, other_run = story(recorder, runs_dir, host="web2")
    # A run whose recorded artifact dir lies outside the data dir's runs/.
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "stdout").write_text("secret")
    stray = recorder.incidents.open("web3", "high_cpu", 95.0, "hot", at=time.time(), since=0.0)
    decision = recorder.decisions.record(
        stray,
        "web3",
        Proposal("restart_nginx", 0.9, "busy"),
        Verdict(VerdictKind.EXECUTE, "restart_nginx", "ok", "ladder"),
        time.time(),
    )
    stray_run = recorder.runs.begin(
        RunRequest("restart_nginx", "/p/x.yml", ("web3",)),
        ident="stray",
        artifact_dir=str(outside),
        trigger="engine",
        requested_by="engine",
        at=time.time(),
        decisions=[(decision, stray)],
    )
    for url in (
        "/incidents/999999",
        "/incidents/abc",
        f"/incidents/{incident}/runs/999999/artifacts.tar.gz",
        f"/incidents/{incident}/runs/{other_run}/artifacts.tar.gz",  # not this incident's run
        f"/incidents/{other}/runs/{run}/artifacts.tar.gz",
        f"/incidents/{stray}/runs/{stray_run}/artifacts.tar.gz",  # outside runs/
        f"/incidents/999999/runs/{run}/artifacts.tar.gz",
    ):
        response = viewer_client.get(url)
        assert response.status_code == 404, url
        assert "404 · Not Found" in response.text, url
    page = viewer_client.get(f"/incidents/{stray}")
    assert page.status_code == 200
    assert "No artifacts available" in page.text
    assert "secret" not in page.text


@BOTH_BACKENDS
def test_artifacts_download_as_tar_gz(
    viewer_client: FlaskClient, recorder: Recorder, runs_dir: Path
) -> None:
    incident, run = story(recorder, runs_dir)
    response = viewer_client.get(f"/incidents/{incident}/runs/{run}/artifacts.tar.gz")
    assert response.status_code == 200
    assert response.mimetype == "application/gzip"
    assert response.headers["Content-Disposition"].startswith("attachment;")
    with tarfile.open(fileobj=io.BytesIO(response.data), mode="r:gz") as tar:
        names = set(tar.getnames())
        stdout = tar.extractfile(f"run-{run}/stdout")
        assert stdout is not None
        assert stdout.read().decode() == strip_ansi(STDOUT)  # as the page shows it
    assert {
        f"run-{run}",
        f"run-{run}/stdout",
        f"run-{run}/status",
        f"run-{run}/rc",
        f"run-{run}/job_events/1-playbook_on_start.json",
        f"run-{run}/job_events/4-runner_on_failed.json",
    } <= names


@BOTH_BACKENDS
def test_pages_and_filters_return_the_right_rows(
    viewer_client: FlaskClient, recorder: Recorder
) -> None:
    now = time.time()
    ids = [
        recorder.incidents.open(f"web{n % 3}", "high_cpu", 90.0, f"load {n}", at=now, since=now)
        for n in range(60)
    ]
    links = re.compile(r'href="/incidents/(\d+)"')

    first = viewer_client.get("/incidents")
    shown = [int(i) for i in links.findall(first.text)]
    assert shown == sorted(ids, reverse=True)[:50]
    older = re.search(r'href="(/incidents\?before=\d+[^"]*)" rel="next"', first.text)
    assert older, first.text
    second = viewer_client.get(older.group(1).replace("&amp;", "&"))
    assert [int(i) for i in links.findall(second.text)] == sorted(ids, reverse=True)[50:]
    assert 'rel="next"' not in second.text

    by_host = viewer_client.get("/incidents?host=web1")
    assert {int(i) for i in links.findall(by_host.text)} == {
        i for n, i in enumerate(ids) if n % 3 == 1
    }
    by_text = viewer_client.get("/incidents?q=LOAD+5")
    assert {int(i) for i in links.findall(by_text.text)} == {ids[5]} | set(ids[50:60])
    assert viewer_client.get("/incidents?status=resolved").text.count('href="/incidents/') == 0
    today = time.strftime("%Y-%m-%d", time.gmtime(now))
    dated = viewer_client.get(f"/incidents?from={today}&to={today}&status=open&kind=high_cpu")
    assert len(links.findall(dated.text)) == 50
    older = re.search(r'href="(/incidents\?[^"]*)" rel="next"', dated.text)
    assert older
    assert "status=open" in older.group(1)
    assert "from=" in older.group(1)
    assert len(links.findall(viewer_client.get("/incidents?to=9999-12-31").text)) == 50


# -- the story at a glance: timeline outcomes, deltas, runs with their verification ---------

ROW = re.compile(
    r'<li class="event event-([a-z_]+) outcome-row-[a-z]+" data-outcome="([a-z]+)">(.*?)</li>',
    re.S,
)


def failed_ladder_story(recorder: Recorder, runs_dir: Path) -> tuple[int, int, str]:
    """As the engine writes it: detected, a rung run, "not recovered" (verified, then the
    incident reopened with the same words), then the rules planner escalates with every
    other rung skipped by failure memory."""
    t0 = time.time() - 600
    incident = recorder.incidents.open("web1", "high_cpu", 97.5, "CPU 97.5%", at=t0, since=t0)
    first = Proposal("restart_nginx", 0.9, "CPU 97.5%; ladder rung 1 of 2: restart_nginx")
    execute = Verdict(VerdictKind.EXECUTE, "restart_nginx", "allowed", "allowed")
    decision = recorder.decisions.record(incident, "web1", first, execute, t0 + 12)
    folder = make_artifacts(runs_dir, f"run-{incident}")
    run = recorder.runs.begin(
        RunRequest("restart_nginx", "/p/restart_nginx.yml", ("web1",)),
        ident=f"run-{incident}",
        artifact_dir=str(folder),
        trigger="engine",
        requested_by="engine",
        at=t0 + 13,
        decisions=[(decision, incident)],
    )
    stats = {"web1": HostRunStats(ok=3, changed=1)}
    result = RunResult(f"run-{incident}", "successful", 0, str(folder), t0 + 13, t0 + 40, stats)
    recorder.runs.end(run, result)
    reason = "CPU 91.0% still above 70% after restart_nginx"
    recorder.decisions.verified(decision, Verification("web1", False, 91.0, t0 + 100, reason))
    recorder.incidents.set_status(incident, IncidentStatus.OPEN, t0 + 100, "not_recovered", reason)
    # The rules planner's own words, reasons and all (engine/plan/rules.py).
    history = HostHistory(
        "web1", tuple(Attempt(9, "rollback_nginx", t0 - 99, t0 - 90, False) for _ in (1, 2))
    )
    state = HostState("web1", HostStatus.HIGH_CPU, 91.0, t0, "CPU 91.0%")
    situation = Situation(
        host="web1",
        state=state,
        incident_id=incident,
        tried=("restart_nginx",),
        history=history,
        fleet={HostStatus.HIGH_CPU: 1},
        actions={},
        ladder=("restart_nginx", "rollback_nginx"),
        now=t0 + 160,
    )
    give_up = RulesPlanner().propose(situation)
    escalate = Verdict(
        VerdictKind.ESCALATE, "escalate", f"planner asked: {give_up.rationale}", "planner"
    )
    recorder.decisions.record(incident, "web1", give_up, escalate, t0 + 160)
    recorder.incidents.set_status(
        incident, IncidentStatus.ESCALATED, t0 + 160, "escalated", give_up.rationale
    )
    return incident, run, reason


def test_the_timeline_is_coloured_by_outcome_with_the_time_between_steps(
    viewer_client: FlaskClient, recorder: Recorder, runs_dir: Path
) -> None:
    incident, _, reason = failed_ladder_story(recorder, runs_dir)
    page = viewer_client.get(f"/incidents/{incident}")
    assert page.status_code == 200
    rows = ROW.findall(page.text)
    assert [(kind, outcome) for kind, outcome, _ in rows] == [
        ("detected", "detected"),
        ("decided", "decided"),
        ("remediating", "running"),
        ("run_ended", "good"),  # the playbook succeeded...
        ("verified", "bad"),  # ...and the host did not recover: one row, not two
        ("decided", "decided"),
        ("escalated", "bad"),
    ]
    labels = re.findall(r'class="badge tl-badge tl-[a-z]+">([^<]+)<', "".join(r for *_, r in rows))
    assert labels[3] == "run ended: successful"
    assert labels[4] == "verified: not recovered"
    deltas = [re.search(r'class="delta"[^>]*>([^<]+)<', row) for *_, row in rows]
    assert deltas[0] is None  # the first step has nothing before it
    assert [d.group(1) for d in deltas[1:] if d] == [
        "+12 s",
        "+1 s",
        "+27 s",
        "+1 min",
        "+1 min",
        "+0 s",  # the escalation with the decision that asked for it
    ]
    timeline = page.text.split('id="timeline"')[1].split("</section>")[0]
    assert timeline.count(reason) == 1  # the "not recovered" line once
    assert "Open for 10 min" in page.text  # detection to now: it is escalated, not closed


def test_a_run_shows_its_outcome_and_its_verification_together(
    viewer_client: FlaskClient, recorder: Recorder, runs_dir: Path
) -> None:
    incident, run, _ = failed_ladder_story(recorder, runs_dir)
    page = viewer_client.get(f"/incidents/{incident}").text
    row = re.search(rf'<tr data-run-row="{run}">(.*?)</tr>', page, re.S)
    assert row, page
    cells = row.group(1)
    assert 'class="badge status-successful">successful' in cells
    assert 'tl-badge tl-bad">not recovered' in cells
    assert "97.5% → 91.0%" in cells
    assert "playbook succeeded; the host did not recover" in cells
    assert "Playbook succeeded; the host did not recover." in page  # on the run's card too


def test_skipped_rungs_say_why(
    viewer_client: FlaskClient, recorder: Recorder, runs_dir: Path
) -> None:
    incident, _, _ = failed_ladder_story(recorder, runs_dir)
    page = viewer_client.get(f"/incidents/{incident}").text
    skipped = re.search(r'<li data-skipped-rung="rollback_nginx">(.*?)</li>', page, re.S)
    assert skipped, page
    assert "failure memory: failed 2 times on this host in the last 24 h" in skipped.group(1)
    assert 'data-skipped-rung="restart_nginx"' not in page  # tried, not skipped


def test_skipped_rungs_parse_old_and_new_rationales() -> None:
    new = (
        "ladder exhausted (tried nothing; skipped restart_nginx (failure memory: failed 2 "
        "times on this host in the last 24 h), rollback_nginx (failure memory: failed 3 times"
        " on this host in the last 30 min))"
    )
    assert skipped_rungs(new) == [
        ("restart_nginx", "failure memory: failed 2 times on this host in the last 24 h"),
        ("rollback_nginx", "failure memory: failed 3 times on this host in the last 30 min"),
    ]
    old = "ladder exhausted (tried nothing; skipped restart_nginx, rollback_nginx)"
    assert skipped_rungs(old) == [("restart_nginx", None), ("rollback_nginx", None)]
    assert skipped_rungs("ladder exhausted (tried restart_nginx; skipped none)") == []
    assert skipped_rungs("hot; ladder rung 1 of 2: restart_nginx") == []


def test_the_page_is_polled_while_open_and_not_once_closed(
    viewer_client: FlaskClient, recorder: Recorder, runs_dir: Path
) -> None:
    open_one, _, _ = failed_ladder_story(recorder, runs_dir)
    closed, _ = story(recorder, runs_dir, host="web2")
    page = viewer_client.get(f"/incidents/{open_one}").text
    assert f'data-poll-url="/incidents/{open_one}/live"' in page
    live = viewer_client.get(f"/incidents/{open_one}/live")
    assert live.status_code == 200
    assert 'data-live-part="head"' in live.text and 'data-live-part="story"' in live.text
    assert "data-incident-closed" not in live.text
    assert "<html" not in live.text and "csrf_token" not in live.text  # a fragment, no forms
    assert "data-poll-url" not in viewer_client.get(f"/incidents/{closed}").text
    assert "data-incident-closed" in viewer_client.get(f"/incidents/{closed}/live").text
    assert viewer_client.get("/incidents/999999/live").status_code == 404


def test_the_live_fragment_needs_a_session(
    client: FlaskClient, recorder: Recorder, runs_dir: Path
) -> None:
    incident, _ = story(recorder, runs_dir)
    response = client.get(f"/incidents/{incident}/live")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize(
    ("seconds", "said"),
    [
        (0, "0 s"),
        (12.4, "12 s"),
        (60, "1 min"),
        (200, "3 min 20 s"),
        (660, "11 min"),
        (3600, "1 h"),
        (3900, "1 h 5 min"),
        (90000, "1 d 1 h"),
        (-5, "0 s"),
    ],
)
def test_spans_read_as_people_say_them(seconds: float, said: str) -> None:
    assert duration(seconds) == said
