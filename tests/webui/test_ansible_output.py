"""A run's Ansible output on the run page and the incident page (webui/ansible_output.py,
templates/_ansible_output.html): statuses from job events or stdout lines, no terminal
escape or markup let through, the recap always there, and one status per task everywhere,
checked on a real ansible-runner run."""

from __future__ import annotations

import html
import json
import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.redact import Redactor
from engine.settings import Settings, load_settings
from engine.store.models import Decision, Incident, PlaybookRun
from engine.timeutil import to_dt
from tests.fixtures.ansible import local_inventory
from webui.ansible_model import clean
from webui.ansible_output import from_events, from_stdout, read_output

ESC = "\x1b"
HOSTILE = [
    "<script>alert(1)</script>",
    "{{ 7*7 }}",
    f"{ESC}]8;;http://evil{chr(7)}click{ESC}]8;;{chr(7)}",
    f"{ESC}[31mred{ESC}[0m",
    f"{ESC}]0;title{ESC}\\",
    "\x9b31m",  # an 8-bit CSI
    "a\x08b\x00c\rd",
    "\u202eevil",  # a right-to-left override
]
POLICY = """\
version: 1
actions:
  mixed:
    playbook: mixed.yml
    description: ok, changed, skipped and an ignored failure
    timeout: 2m
remediation:
  ladder: [mixed]
"""
PLAYBOOK = """\
- name: Mixed <b>play</b>
  hosts: all
  gather_facts: false
  tasks:
    - name: Say <script>hi</script>
      ansible.builtin.debug:
        msg: "{{ '{{ 7*7 }}' }} <img src=x onerror=alert(1)>"
    - name: Change something
      ansible.builtin.command: "true"
    - name: Skip me
      ansible.builtin.debug:
        msg: never
      when: false
    - name: Fail but carry on
      ansible.builtin.command: "false"
      ignore_errors: true
"""
Token = Callable[[FlaskClient], str]


def event(counter: int, kind: str, stdout: str = "", **data: object) -> dict[str, object]:
    return {"counter": counter, "event": kind, "stdout": stdout, "event_data": data}


def test_every_escape_and_control_character_is_removed() -> None:
    for text in HOSTILE:
        cleaned = clean(text)
        assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]", cleaned), text
    assert clean(HOSTILE[2]) == "click"
    assert clean(HOSTILE[3]) == "red"
    assert clean("ok: [web1]\r\n") == "ok: [web1]\n"


def test_statuses_come_from_the_events() -> None:
    events = [
        event(1, "playbook_on_play_start", "PLAY [p] ***", play="p"),
        event(2, "playbook_on_task_start", "TASK [t1] ***", task="t1"),
        event(3, "runner_on_ok", "ok: [a]", task="t1", host="a", res={"changed": False}),
        event(4, "runner_on_ok", "changed: [b]", task="t1", host="b", res={"changed": True}),
        event(5, "playbook_on_task_start", "", task="t2"),
        event(
            6, "runner_on_failed", "fatal: [a]: FAILED!", task="t2", host="a", ignore_errors=True
        ),
        event(7, "runner_on_unreachable", "fatal: [b]: UNREACHABLE!", task="t2", host="b"),
        event(8, "playbook_on_task_start", "", task="t3"),
        event(9, "runner_on_skipped", "skipping: [a]", task="t3", host="a", duration=0.5),
        event(10, "warning", "[WARNING]: careful"),
        event(11, "playbook_on_stats", "PLAY RECAP ***\na : ok=1 changed=1 failed=0\n"),
    ]
    out = from_events(events, Redactor())
    (play,) = out.plays
    t1, t2, t3 = play.tasks
    assert t1.hosts == {"a": "ok", "b": "changed"} and t1.status == "changed"
    assert t2.hosts == {"a": "ignored", "b": "unreachable"} and t2.status == "unreachable"
    assert (t3.status, t3.duration) == ("skipped", 0.5)
    assert t3.lines[-1].status == "warn"
    assert play.status == "unreachable"
    (host,) = out.recap
    assert (host.host, host.status) == ("a", "changed")


def test_statuses_from_stdout_lines_match_the_events() -> None:
    out = from_stdout(
        'PLAY [p] ****\n\nTASK [t1] ****\nok: [a] => {\n    "msg": 1\n}\nchanged: [b]\n\n'
        "TASK [t2] ****\nfatal: [a]: FAILED! => {}\n...ignoring\n"
        "fatal: [b]: UNREACHABLE! => {}\n\nPLAY RECAP ****\n"
        "a : ok=2 changed=1 unreachable=0 failed=0 skipped=0 rescued=0 ignored=1\n"
    )
    t1, t2 = out.plays[0].tasks
    assert t1.hosts == {"a": "ok", "b": "changed"}
    assert [line.status for line in t1.lines] == ["ok", "ok", "ok", "changed"]
    assert t2.hosts == {"a": "ignored", "b": "unreachable"}
    assert out.recap[0].status == "changed"


def test_a_long_run_keeps_its_end_and_its_recap(tmp_path: Path) -> None:
    lines = ["PLAY [p] ****", ""]
    for n in range(3000):
        lines += [f"TASK [task {n}] ****", f"ok: [web1] => line {n}", ""]
    lines += ["PLAY RECAP ****", "web1 : ok=3000 changed=0 unreachable=0 failed=0"]
    (tmp_path / "stdout").write_text("\n".join(lines) + "\n")
    out = read_output(tmp_path, Redactor(), limit=500)
    assert out.cut
    tasks = out.plays[0].tasks
    assert sum(len(t.lines) for t in tasks) == 500
    assert tasks[-1].lines[-1].text == "ok: [web1] => line 2999"  # the end is shown
    assert [h.host for h in out.recap] == ["web1"]


@pytest.mark.parametrize("hostile", HOSTILE)
def test_hostile_output_is_escaped_on_both_pages(
    viewer_client: FlaskClient, sessions: sessionmaker[Session], tmp_path: Path, hostile: str
) -> None:
    folder = Path(str(tmp_path / "data" / "runs" / "bad" / "artifacts" / "bad"))
    (folder / "job_events").mkdir(parents=True)
    events = [
        event(1, "playbook_on_play_start", "", play=f"play {hostile}"),
        event(2, "playbook_on_task_start", "", task=f"task {hostile}"),
        event(3, "runner_on_ok", f"ok: [web1] => {hostile}", task=f"task {hostile}", host="web1"),
        event(4, "playbook_on_stats", f"PLAY RECAP ***\nweb1 : ok=1 changed=0\n{hostile}\n"),
    ]
    for item in events:
        (folder / "job_events" / f"{item['counter']}-e.json").write_text(json.dumps(item))
    incident = incident_with_run(sessions, "bad", str(folder))
    for url in (f"/incidents/{incident}", "/playbooks/runs/bad", "/playbooks/runs/bad/progress"):
        page = viewer_client.get(url).text
        assert "<script>alert" not in page and "http://evil" not in page, url
        assert not re.search(r"[\x00-\x08\x0b-\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e]", page), url
        if "<script>" in hostile:
            assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page, url
        if "7*7" in hostile:
            assert "=&gt; {{ 7*7 }}" in page and "=&gt; 49" not in page, url
        assert 'class="ao-recap"' in page, url


def incident_with_run(sessions: sessionmaker[Session], ident: str, artifact_dir: str) -> int:
    """An incident whose decision ran ``ident`` (a run row is added if there is none)."""
    now = to_dt(time.time())
    with sessions.begin() as s:
        run = s.query(PlaybookRun).filter_by(ident=ident).one_or_none()
        if run is None:
            run = PlaybookRun(
                ident=ident,
                action="mixed",
                playbook="mixed.yml",
                hosts=["web1"],
                trigger="engine",
                requested_by="engine",
                extra_var_names=[],
                status="successful",
                rc=0,
                artifact_dir=artifact_dir,
                created_at=now,
                started_at=now,
                ended_at=now,
            )
            s.add(run)
        incident = Incident(
            host="localhost",
            kind="high_cpu",
            status="open",
            attempts=1,
            opened_at=now,
            updated_at=now,
            cpu_before=97.0,
            summary="hot",
        )
        s.add(incident)
        s.flush()
        s.add(
            Decision(
                incident_id=incident.id,
                host="localhost",
                created_at=now,
                planner="rules",
                action="mixed",
                confidence=1.0,
                rationale="r",
                verdict="execute",
                rule="allowed",
                reason="ok",
                run_id=run.id,
            )
        )
        return int(incident.id)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """A policy with one playbook of mixed results, and a local inventory."""
    playbooks = tmp_path / "playbooks"
    playbooks.mkdir()
    (playbooks / "mixed.yml").write_text(PLAYBOOK)
    (tmp_path / "policy.yaml").write_text(POLICY)
    inventory = local_inventory(tmp_path / "inventory.yml", "localhost")
    return load_settings(
        {
            "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
            "AUTOSRE_DATABASE_URL": database_url,
            "AUTOSRE_POLICY": str(tmp_path / "policy.yaml"),
            "AUTOSRE_INVENTORY": str(inventory),
            "AUTOSRE_PLAYBOOK_DIR": str(playbooks),
        }
    )


TASK = re.compile(
    r'data-ao-status="([a-z]*)">\s*<summary>.*?<span class="ao-name">(.*?)</span>', re.S
)


def task_statuses(page: str) -> dict[str, str]:
    return {html.unescape(name): status for status, name in TASK.findall(page)}


def test_a_real_run_reads_the_same_on_the_run_page_and_the_incident_page(
    operator_client: FlaskClient,
    viewer_client: FlaskClient,
    csrf_token: Token,
    sessions: sessionmaker[Session],
) -> None:
    fields = {
        "csrf_token": csrf_token(operator_client),
        "reason": "output test",
        "hosts": ["localhost"],
        "confirm": "yes",
    }
    started = operator_client.post("/playbooks/mixed/run", data=fields)
    assert started.status_code == 302, started.text
    ident = started.headers["Location"].rsplit("/", 1)[1]
    deadline = time.monotonic() + 90
    while "data-run-done" not in operator_client.get(f"/playbooks/runs/{ident}/progress").text:
        assert time.monotonic() < deadline, "the run did not end in 90 s"
        time.sleep(0.2)
    with sessions() as s:
        run = s.query(PlaybookRun).filter_by(ident=ident).one()
        artifact_dir = str(run.artifact_dir)
    incident = incident_with_run(sessions, ident, artifact_dir)

    run_page = viewer_client.get(f"/playbooks/runs/{ident}").text
    incident_page = viewer_client.get(f"/incidents/{incident}").text
    expected = {
        "Say <script>hi</script>": "ok",
        "Change something": "changed",  # "ok" on the run page before: one model now
        "Skip me": "skipped",
        "Fail but carry on": "ignored",
    }
    assert task_statuses(run_page) == expected
    assert task_statuses(incident_page) == expected
    for page in (run_page, incident_page):
        assert "Say &lt;script&gt;hi&lt;/script&gt;" in page
        assert "{{ 7*7 }} &lt;img src=x onerror=alert(1)&gt;" in page  # printed, not evaluated
        assert "\x1b" not in page and "\r" not in page
        assert 'class="ao-line ao-changed">changed: [localhost]' in page
        recap = page.split('class="ao-recap"')[1]
        assert '<span class="ao-host ao-changed">localhost</span>' in recap
        assert '<span class="ao-count ao-ignored">ignored=1</span>' in recap
        # Failed tasks start open; an ignored failure does not.
        assert re.search(
            r'<details class="ao-task" data-ao-key="[^"]+" data-ao-status="ignored"', page
        )


def test_endless_lines_and_floods_of_events_are_bounded(tmp_path: Path) -> None:
    (tmp_path / "job_events").mkdir()
    events = [event(1, "playbook_on_task_start", "", task="t")]
    events += [
        event(n, "runner_item_on_ok", f"ok: [web1] => {'x' * 20_000}", task="t", host="web1")
        for n in range(2, 60)
    ]
    events.append(event(60, "playbook_on_stats", "PLAY RECAP ***\nweb1 : ok=58 changed=0"))
    for item in events:
        (tmp_path / "job_events" / f"{item['counter']}-e.json").write_text(json.dumps(item))
    out = read_output(tmp_path, Redactor())
    lines = out.plays[0].tasks[0].lines
    assert out.cut and out.recap
    assert all(len(line.text) <= 8192 + len(" … (line cut)") for line in lines)
    assert sum(len(line.text) for line in lines) <= 256 * 1024
