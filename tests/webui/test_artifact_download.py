"""A run's artifact download from its run page: as redacted as the page, an allow-list of
files (stdout, status, rc, job events: never env/, command, inventories or vars files), and
nothing reached through a link or a ``..`` name.

One real playbook run by hand (ansible-runner, a secret var) gives the artifacts; the
attacker tests then plant secrets, links and odd names in a run's folder.
"""

from __future__ import annotations

import html
import io
import json
import re
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.settings import Settings, load_settings
from engine.store.models import PlaybookRun
from tests.fixtures.one_action import one_action_files
from tests.webui.conftest import TEST_CONFIG
from tests.webui.seed import seed

POLICY = """\
version: 1
actions:
  say_hello:
    playbook: hello.yml
    description: Print a greeting and use a secret.
    timeout: 1m
    vars:
      greeting:
        pattern: '[a-z]{1,16}'
      api_secret:
        pattern: '[A-Za-z0-9-]{8,64}'
        secret: true
remediation:
  ladder: [say_hello]
"""
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Greet
      ansible.builtin.debug:
        msg: "{{ greeting }} with {{ api_secret }}"
"""
SECRET_VAR = "Sv9-run-secret-4411"  # the run's secret: true var
MODEL_KEY = "gm-key-Qx81Lw-" + "k" * 24  # a secret the web UI knows from its settings
SESSION_KEY = str(TEST_CONFIG["SECRET_KEY"])
PLAIN = "plain-pw-Tz55"  # only its name (db_password=) says it is secret
CANARY = "CANARY-e81d"  # what is outside the run's folder
INVENTORY_SECRET = "inv-pw-Hk27-" + "p" * 12  # a credential-named inventory var
RUN_URL = re.compile(r"/playbooks/runs/([A-Za-z0-9._-]+)$")
LINE = re.compile(r'<span class="ao-line[^"]*">(.*?)</span>\n', re.S)  # one output line
Token = Callable[[FlaskClient], str]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """A one-action policy with a secret var, a local inventory and a model key to hide."""
    env = one_action_files(tmp_path, policy=POLICY, playbook=PLAYBOOK)
    with Path(env["AUTOSRE_INVENTORY"]).open(
        "a"
    ) as listed:  # the engine redacts it; so must the UI
        listed.write(f"      vault_db_password: {INVENTORY_SECRET}\n")
    return load_settings(env | {"AUTOSRE_DATABASE_URL": database_url, "GEMINI_API_KEY": MODEL_KEY})


def untar(data: bytes) -> dict[str, tarfile.TarInfo | bytes]:
    """Member name -> contents (files) or the member itself (anything else)."""
    found: dict[str, tarfile.TarInfo | bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member in tar.getmembers():
            file = tar.extractfile(member) if member.isfile() else None
            found[member.name] = member if file is None else file.read()
    return found


def everything(files: dict[str, tarfile.TarInfo | bytes]) -> str:
    return "\n".join([*files, *(v.decode() for v in files.values() if isinstance(v, bytes))])


def run_by_hand(client: FlaskClient, token: str) -> str:
    """Run say_hello on localhost from the form (check mode); its ident once it has ended."""
    fields = {
        "csrf_token": token,
        "hosts": ["localhost"],
        "check": "1",
        "var_greeting": "howdy",
        "var_api_secret": SECRET_VAR,
        "reason": "artifact download test",
        "confirm": "yes",
    }
    started = client.post("/playbooks/say_hello/run", data=fields)
    assert started.status_code == 302, started.text
    found = RUN_URL.search(started.headers["Location"])
    assert found, started.headers["Location"]
    deadline = time.monotonic() + 60
    while "data-run-done" not in client.get(f"/playbooks/runs/{found.group(1)}/progress").text:
        assert time.monotonic() < deadline, "the run did not end in 60 s"
        time.sleep(0.2)
    return found.group(1)


def test_the_run_pages_download_is_the_pages_output_redacted(
    app: Flask,
    operator_client: FlaskClient,
    viewer_client: FlaskClient,
    client: FlaskClient,
    csrf_token: Token,
    sessions: sessionmaker[Session],
) -> None:
    ident = run_by_hand(operator_client, csrf_token(operator_client))
    with sessions() as session:
        run = session.query(PlaybookRun).filter_by(ident=ident).one()
        run_id = run.id
    private = Path(app.config["AUTOSRE_DATA_DIR"]) / "runs" / ident
    artifacts = private / "artifacts" / ident
    # What a careless engine or a person could leave behind: secrets in the outcome files,
    # and files that must never leave the server at all.
    with (artifacts / "stdout").open("a") as stdout:
        stdout.write(f"key {MODEL_KEY} session {SESSION_KEY} db_password={PLAIN}\n")
        stdout.write(f"inventory {INVENTORY_SECRET}\n")
    events = sorted((artifacts / "job_events").glob("*.json"))
    event = json.loads(events[-1].read_text())
    event["event_data"]["res"] = {"api_token": PLAIN, "msg": f"uses {MODEL_KEY}"}
    # The page builds its output from the events, as a real run prints it there too.
    event["stdout"] = event.get("stdout", "") + (
        f"\nkey {MODEL_KEY} session {SESSION_KEY} db_password={PLAIN}\ninventory {INVENTORY_SECRET}"
    )
    events[-1].write_text(json.dumps(event))
    (private / "env").mkdir(exist_ok=True)
    (private / "env" / "extravars").write_text(f"api_secret: {SECRET_VAR}\n{CANARY}\n")
    (artifacts / "vars.yml").write_text(f"{CANARY}\n")

    page = viewer_client.get(f"/playbooks/runs/{ident}")
    link = f"/playbooks/runs/{ident}/artifacts.tar.gz"
    assert f'href="{link}"' in page.text
    before_recap = page.text.split("data-ao-recap")[0]
    shown = [html.unescape(re.sub(r"<[^>]+>", "", line)) for line in LINE.findall(before_recap)]
    assert shown
    assert "inventory ********" in page.text and INVENTORY_SECRET not in page.text
    for who in (viewer_client, operator_client):  # the run page's role, the page's redaction
        response = who.get(link)
        assert response.status_code == 200
        assert response.mimetype == "application/gzip"
        disposition = response.headers["Content-Disposition"]
        assert f'filename="run-{run_id}-artifacts.tar.gz"' in disposition
        files = untar(response.data)
        top = f"run-{run_id}"
        assert set(files) == {
            top,
            f"{top}/stdout",
            f"{top}/status",
            f"{top}/rc",
            f"{top}/job_events",
            *(f"{top}/job_events/{e.name}" for e in events),
        }
        output = files[f"{top}/stdout"]
        assert isinstance(output, bytes)
        assert all(line in output.decode() for line in shown)  # what the page shows, redacted
        assert "howdy with ********" in output.decode()
        assert "db_password=********" in output.decode()
        text = everything(files)
        for secret in (SECRET_VAR, MODEL_KEY, SESSION_KEY, PLAIN, CANARY, INVENTORY_SECRET):
            assert secret not in text
        assert files[f"{top}/status"] == b"successful"
    assert client.get(link).status_code == 302  # signed out: to the sign-in page
    assert "/login" in client.get(link).headers["Location"]


@pytest.fixture
def planted(app: Flask, sessions: sessionmaker[Session], tmp_path: Path) -> Path:
    """Seeded run r1 pointed at runs/r1, with stdout and one event; its artifact folder."""
    run_id = seed(sessions)["run"]
    folder = Path(app.config["AUTOSRE_DATA_DIR"]) / "runs" / "r1" / "artifacts" / "r1"
    (folder / "job_events").mkdir(parents=True)
    (folder / "stdout").write_text("ok: [web1]\n")
    (folder / "job_events" / "1-ok.json").write_text(json.dumps({"counter": 1, "event": "x"}))
    with sessions.begin() as session:
        session.get_one(PlaybookRun, run_id).artifact_dir = str(folder.parents[1])
    (tmp_path / "outside.json").write_text(json.dumps({"counter": 2, "stdout": CANARY}))
    return folder


def test_links_and_dot_dot_names_never_escape_the_run_folder(
    viewer_client: FlaskClient, planted: Path, tmp_path: Path
) -> None:
    shadow = Path("/etc/shadow")
    (planted / "rc").symlink_to(shadow)
    (planted / "status").symlink_to(tmp_path / "outside.json")
    (planted / "shadow").symlink_to(shadow)
    (planted / "job_events" / "2-shadow.json").symlink_to(shadow)
    (planted / "job_events" / "3-outside.json").symlink_to(tmp_path / "outside.json")
    (planted / "job_events" / "..json").write_text(json.dumps({"counter": 4}))
    (planted / "job_events" / "...json").write_text(json.dumps({"counter": 5}))
    (planted / "fact_cache").symlink_to("/etc")

    response = viewer_client.get("/playbooks/runs/r1/artifacts.tar.gz")
    assert response.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(response.data), mode="r:gz") as tar:
        members = tar.getmembers()
        text = everything(untar(response.data))
    assert all(m.isfile() or m.isdir() for m in members)  # no links, no devices
    for member in members:
        parts = member.name.split("/")
        assert parts[0].startswith("run-") and not {"", ".", ".."} & set(parts), member.name
    names = {m.name.split("/", 1)[-1] for m in members}
    assert {"stdout", "job_events/1-ok.json", "job_events/..json"} <= names
    assert not {"rc", "status", "shadow", "job_events/2-shadow.json"} & names
    assert "root:" not in text and CANARY not in text
    if shadow.exists():
        assert shadow.read_text()[:8] not in text


@pytest.mark.parametrize(
    "path",
    [
        "/playbooks/runs/../artifacts.tar.gz",
        "/playbooks/runs/%2E%2E/artifacts.tar.gz",
        "/playbooks/runs/r1%2F..%2F..%2Fetc/artifacts.tar.gz",
        "/playbooks/runs/.hidden/artifacts.tar.gz",
        "/playbooks/runs/no-such-run/artifacts.tar.gz",
    ],
)
def test_a_dot_dot_or_unknown_ident_is_404(
    viewer_client: FlaskClient, planted: Path, path: str
) -> None:
    response = viewer_client.get(path)
    assert response.status_code == 404
    assert CANARY not in response.text


def test_a_live_run_has_no_download_yet(
    viewer_client: FlaskClient, planted: Path, sessions: sessionmaker[Session]
) -> None:
    with sessions.begin() as session:
        session.query(PlaybookRun).filter_by(ident="r1").update({"status": "running"})
    response = viewer_client.get("/playbooks/runs/r1/artifacts.tar.gz")
    assert response.status_code == 409
    assert "once it ends" in response.text
    page = viewer_client.get("/playbooks/runs/r1").text
    assert "artifacts.tar.gz" not in page and "downloadable once the run ends" in page
