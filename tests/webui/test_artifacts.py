"""Run artifacts on pages and in downloads: only from inside runs/, never through a symlink,
downloadable only once the run has ended, and shown redacted while it is live.

Each test writes the run's directory itself (ansible-runner's layout) and points the run
row of ``tests.webui.seed`` (run "r1" of incident 1) at it.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts.users import create_token
from engine.settings import Settings, load_settings
from engine.store.models import PlaybookRun
from tests.webui.conftest import TEST_CONFIG, MakeUser
from tests.webui.seed import seed

CANARY = "CANARY-7f3a9c"
# A model key with the characters JSON and shells escape; "Zq7Xv9" is in every encoding of it.
MODEL_KEY = 'gem"key\\Zq7Xv9-' + "k" * 24
SESSION_KEY = TEST_CONFIG["SECRET_KEY"]
PAGES = ("/incidents/1", "/playbooks/runs/r1", "/playbooks/runs/r1/progress")
DOWNLOAD = "/incidents/1/runs/{run}/artifacts.tar.gz"


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The conftest's settings with a model key the app must never show."""
    return load_settings(
        {
            "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
            "AUTOSRE_DATABASE_URL": database_url,
            "GEMINI_API_KEY": MODEL_KEY,
        }
    )


@pytest.fixture
def runs_dir(app: Flask) -> Path:
    folder = Path(app.config["AUTOSRE_DATA_DIR"]) / "runs"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
def run_id(sessions: sessionmaker[Session]) -> int:
    return seed(sessions)["run"]


def point_run(
    sessions: sessionmaker[Session], run_id: int, artifact_dir: str, status: str = "successful"
) -> None:
    with sessions.begin() as session:
        run = session.get_one(PlaybookRun, run_id)
        run.artifact_dir = artifact_dir
        run.status = status


def write_run(folder: Path, *, stdout: str, task: str) -> None:
    """stdout, one task event and a status file, as ansible-runner leaves them."""
    (folder / "job_events").mkdir(parents=True, exist_ok=True)
    event = {
        "counter": 1,
        "event": "runner_on_ok",
        "stdout": stdout,
        "event_data": {"task": task, "host": "web1", "res": {"changed": True, "msg": stdout}},
    }
    (folder / "job_events" / "1-runner_on_ok.json").write_text(json.dumps(event))
    (folder / "stdout").write_text(stdout)
    (folder / "status").write_text("successful")


def tar_text(data: bytes) -> tuple[str, list[tarfile.TarInfo]]:
    """Everything the tar.gz holds, names and contents, and its members."""
    parts = []
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        members = tar.getmembers()
        for member in members:
            parts.append(member.name)
            file = tar.extractfile(member) if member.isfile() else None
            if file is not None:
                parts.append(file.read().decode("utf-8", "replace"))
    return "\n".join(parts), members


@pytest.mark.parametrize(
    "recorded",
    [
        "/etc",
        "{runs}/../..",
        "{runs}/../outside",
        "{runs}",
        "{runs}/linked",
        "{runs}/real/../../../outside",
        "relative/runs/r1",
        "{runs}/r1\x00/../..",
    ],
)
def test_a_run_dir_outside_runs_is_never_read(
    viewer_client: FlaskClient,
    sessions: sessionmaker[Session],
    runs_dir: Path,
    run_id: int,
    tmp_path: Path,
    recorded: str,
) -> None:
    data_parent = runs_dir.parent.parent  # what "runs/../.." names
    write_run(data_parent, stdout=f"{CANARY} stdout\n", task=f"{CANARY} task")
    write_run(runs_dir.parent / "outside", stdout=f"{CANARY} stdout\n", task=f"{CANARY} task")
    write_run(runs_dir, stdout=f"{CANARY} stdout\n", task=f"{CANARY} task")
    (runs_dir / "real").mkdir()
    (runs_dir / "linked").symlink_to(runs_dir.parent / "outside")
    point_run(sessions, run_id, recorded.format(runs=runs_dir))

    for url in PAGES:
        page = viewer_client.get(url)
        assert page.status_code == 200, url
        assert CANARY not in page.text, url
    assert "No artifacts available" in viewer_client.get("/incidents/1").text
    download = viewer_client.get(DOWNLOAD.format(run=run_id))
    assert download.status_code == 404
    assert CANARY not in download.text


def test_symlinks_inside_a_run_dir_are_never_followed(
    viewer_client: FlaskClient,
    sessions: sessionmaker[Session],
    runs_dir: Path,
    run_id: int,
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    write_run(outside, stdout=f"{CANARY} stdout\n", task=f"{CANARY} task")
    secret_file = outside / "secret.txt"
    secret_file.write_text(f"{CANARY} file\n")
    folder = runs_dir / "r1" / "artifacts" / "r1"
    write_run(folder, stdout="ok: [web1]\n", task="Restart nginx")
    (folder / "stdout").unlink()
    (folder / "stdout").symlink_to(secret_file)
    (folder / "job_events" / "2-runner_on_ok.json").symlink_to(
        outside / "job_events" / "1-runner_on_ok.json"
    )
    (folder / "linked_dir").symlink_to(outside)
    (folder / "linked_file").symlink_to(secret_file)
    os.mkfifo(folder / "rc")  # a FIFO must neither hang a page nor the download
    point_run(sessions, run_id, str(runs_dir / "r1"))

    for url in PAGES:
        page = viewer_client.get(url)
        assert page.status_code == 200, url
        assert CANARY not in page.text, url
    assert "Restart nginx" in viewer_client.get("/incidents/1").text  # the real event shows

    download = viewer_client.get(DOWNLOAD.format(run=run_id))
    assert download.status_code == 200
    text, members = tar_text(download.data)
    assert CANARY not in text
    assert all(m.isfile() or m.isdir() for m in members)
    names = {m.name for m in members}
    assert f"run-{run_id}/job_events/1-runner_on_ok.json" in names
    assert not {f"run-{run_id}/stdout", f"run-{run_id}/rc", f"run-{run_id}/linked_dir"} & names


def test_a_symlinked_artifacts_folder_is_never_followed(
    viewer_client: FlaskClient,
    sessions: sessionmaker[Session],
    runs_dir: Path,
    run_id: int,
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    write_run(outside / "r1", stdout=f"{CANARY} stdout\n", task=f"{CANARY} task")
    (runs_dir / "r1").mkdir()
    (runs_dir / "r1" / "artifacts").symlink_to(outside)
    point_run(sessions, run_id, str(runs_dir / "r1"))
    for url in PAGES:
        page = viewer_client.get(url)
        assert page.status_code == 200, url
        assert CANARY not in page.text, url
    download = viewer_client.get(DOWNLOAD.format(run=run_id))
    assert download.status_code == 200
    assert CANARY not in tar_text(download.data)[0]


@pytest.mark.parametrize("status", ["running", "pending"])
def test_a_live_run_is_not_downloadable_until_it_ends(
    viewer_client: FlaskClient,
    sessions: sessionmaker[Session],
    runs_dir: Path,
    run_id: int,
    status: str,
) -> None:
    folder = runs_dir / "r1" / "artifacts" / "r1"
    write_run(folder, stdout="ok: [web1]\n", task="Restart nginx")
    point_run(sessions, run_id, str(runs_dir / "r1"), status=status)

    download = viewer_client.get(DOWNLOAD.format(run=run_id))
    assert download.status_code == 409
    assert "the run is still in progress" in download.text.lower()
    assert "once it ends" in download.text
    page = viewer_client.get("/incidents/1").text
    assert DOWNLOAD.format(run=run_id) not in page
    assert "can be downloaded once it ends" in page

    point_run(sessions, run_id, str(runs_dir / "r1"), status="failed")
    assert viewer_client.get(DOWNLOAD.format(run=run_id)).status_code == 200


def test_live_output_and_events_are_redacted(
    viewer_client: FlaskClient,
    sessions: sessionmaker[Session],
    runs_dir: Path,
    run_id: int,
) -> None:
    escaped = json.dumps(MODEL_KEY)[1:-1]
    stdout = (
        f"TASK [use the key {MODEL_KEY}]\n"
        f'ok: [web1] => {{"msg": "{escaped}"}}\n'
        f"signed with {SESSION_KEY}\n"
        "done\n"
    )
    folder = runs_dir / "r1" / "artifacts" / "r1"
    write_run(folder, stdout=stdout, task=f"use the key {MODEL_KEY} and {SESSION_KEY}")
    point_run(sessions, run_id, str(runs_dir / "r1"), status="running")

    for url in PAGES:
        page = viewer_client.get(url)
        assert page.status_code == 200, url
        assert "Zq7Xv9" not in page.text, url  # in every form of the model key
        assert SESSION_KEY not in page.text, url
        assert "done" in page.text, url
    progress = viewer_client.get("/playbooks/runs/r1/progress").text
    assert "use the key ********" in progress  # the task event, redacted

    (folder / "stdout").unlink()  # before ansible-runner writes stdout, events' stdout shows
    progress = viewer_client.get("/playbooks/runs/r1/progress").text
    assert "Zq7Xv9" not in progress and SESSION_KEY not in progress
    assert "done" in progress

    write_run(folder, stdout=stdout, task="t")
    point_run(sessions, run_id, str(runs_dir / "r1"), status="successful")
    download = viewer_client.get(DOWNLOAD.format(run=run_id))
    assert download.status_code == 200
    text, _ = tar_text(download.data)
    assert "Zq7Xv9" not in text and SESSION_KEY not in text
    assert "done" in text


def test_recorded_text_is_redacted_on_pages_and_in_the_api(
    viewer_client: FlaskClient,
    sessions: sessionmaker[Session],
    make_user: MakeUser,
    run_id: int,
) -> None:
    with sessions.begin() as session:
        run = session.get_one(PlaybookRun, run_id)
        run.error = f"failed with {MODEL_KEY}"
        # A host named like a credential keeps its stats: only string values are redacted.
        run.stats = {"token-server": {"ok": 7, "changed": 1, "failures": 0}}
    user = make_user("viewer")
    bearer = {"Authorization": f"Bearer {create_token(sessions, user.name, 'test')}"}

    for url in (*PAGES, "/api/v1/runs", f"/api/v1/runs/{run_id}", "/api/v1/incidents/1"):
        client_headers = bearer if url.startswith("/api/") else {}
        response = viewer_client.get(url, headers=client_headers)
        assert response.status_code == 200, url
        assert "Zq7Xv9" not in response.text, url
        assert "failed with ********" in response.text, url
    found = viewer_client.get(f"/api/v1/runs/{run_id}", headers=bearer).json
    assert found is not None and found["stats"]["token-server"]["ok"] == 7
    assert "<td>token-server</td><td>7</td>" in viewer_client.get("/playbooks/runs/r1").text
