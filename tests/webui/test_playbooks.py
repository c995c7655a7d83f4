"""The playbooks pages: whitelist, run by hand (form, confirm, live progress), refusals."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.execute.locks import HostLocks
from engine.settings import Settings
from engine.store.models import PlaybookRun
from tests.fixtures.one_action import one_action_settings

POLICY = """\
version: 1
actions:
  say_hello:
    playbook: hello.yml
    description: Print a greeting <b>harmlessly</b>.
    timeout: 1m
    vars:
      greeting:
        pattern: '[a-z]{1,16}'
        description: the word to print
remediation:
  ladder: [say_hello]
"""
PLAYBOOK = """\
- hosts: all
  gather_facts: false
  tasks:
    - name: Greet
      ansible.builtin.debug:
        msg: "{{ greeting | default('hello') }}"
"""
RUN_URL = re.compile(r"/playbooks/runs/([A-Za-z0-9._-]+)$")
Token = Callable[[FlaskClient], str]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    """The conftest's settings, with a tiny policy, playbook dir and local inventory."""
    return one_action_settings(
        tmp_path, database_url, policy=POLICY, playbook=PLAYBOOK, hosts=("localhost", "other-host")
    )


def run_count(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(PlaybookRun.id))) or 0


def form(token: str, **fields: object) -> dict[str, object]:
    return {"csrf_token": token, "reason": "a test run", **fields}  # a run by hand says why


def test_list_shows_whitelist_escaped(viewer_client: FlaskClient) -> None:
    page = viewer_client.get("/playbooks")
    assert page.status_code == 200
    assert "say_hello" in page.text
    assert "Print a greeting &lt;b&gt;harmlessly&lt;/b&gt;." in page.text
    assert "[a-z]{1,16}" in page.text
    assert "/playbooks/say_hello/run" not in page.text  # viewers get no run link


def test_run_form_lists_hosts_and_vars(operator_client: FlaskClient) -> None:
    page = operator_client.get("/playbooks/say_hello/run")
    assert page.status_code == 200
    assert 'value="localhost"' in page.text and 'value="other-host"' in page.text
    assert re.search(r'name="check" value="1" checked', page.text)
    assert 'name="var_greeting"' in page.text


def test_run_by_hand_in_check_mode(
    operator_client: FlaskClient, csrf_token: Token, sessions: sessionmaker[Session]
) -> None:
    token = csrf_token(operator_client)
    fields = form(token, hosts=["localhost"], check="1", var_greeting="howdy")

    confirm = operator_client.post("/playbooks/say_hello/run", data=fields)
    assert confirm.status_code == 200
    assert "Confirm the run" in confirm.text and "check mode" in confirm.text
    assert 'name="confirm" value="yes"' in confirm.text
    assert run_count(sessions) == 0  # nothing runs before the confirmation

    started = operator_client.post("/playbooks/say_hello/run", data={**fields, "confirm": "yes"})
    assert started.status_code == 302
    found = RUN_URL.search(started.headers["Location"])
    assert found, started.headers["Location"]
    ident = found.group(1)

    page = operator_client.get(f"/playbooks/runs/{ident}")
    assert page.status_code == 200
    deadline = time.monotonic() + 120
    while True:
        fragment = operator_client.get(f"/playbooks/runs/{ident}/progress")
        assert fragment.status_code == 200
        if "data-run-done" in fragment.text or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert "data-run-done" in fragment.text, fragment.text
    assert 'data-run-status="successful"' in fragment.text
    assert "howdy" in fragment.text  # the output tail
    assert "\x1b[" not in fragment.text
    assert "Greet" in fragment.text  # a task event

    with sessions() as session:
        run = session.scalars(select(PlaybookRun)).one()
    assert (run.ident, run.trigger, run.requested_by) == (ident, "manual", "operator")
    assert run.check_mode is True
    assert run.hosts == ["localhost"]
    assert run.extra_var_names == ["greeting"]
    assert run.status == "successful"

    done = operator_client.get(f"/playbooks/runs/{ident}")
    assert "data-poll-url" not in done.text  # a finished run is not polled
    assert ident in operator_client.get("/playbooks").text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hosts": ["nowhere"]}, "not in the inventory"),
        ({"hosts": ["localhost"], "var_other": "x"}, "not allowed for say_hello"),
        ({"hosts": ["localhost"], "var_greeting": "NOT OK"}, "does not match"),
        ({}, "no host given"),
    ],
)
@pytest.mark.parametrize("confirm", [False, True])
def test_refusals_show_the_form_again(
    operator_client: FlaskClient,
    csrf_token: Token,
    sessions: sessionmaker[Session],
    fields: dict[str, object],
    message: str,
    confirm: bool,
) -> None:
    data = form(csrf_token(operator_client), check="1", **fields)
    if confirm:
        data["confirm"] = "yes"
    response = operator_client.post("/playbooks/say_hello/run", data=data)
    assert response.status_code == 400
    assert message in response.text
    assert 'name="hosts"' in response.text  # the form again
    assert run_count(sessions) == 0


def test_viewer_cannot_run(
    viewer_client: FlaskClient, csrf_token: Token, sessions: sessionmaker[Session]
) -> None:
    assert viewer_client.get("/playbooks/say_hello/run").status_code == 403
    data = form(csrf_token(viewer_client), hosts=["localhost"], check="1", confirm="yes")
    assert viewer_client.post("/playbooks/say_hello/run", data=data).status_code == 403
    assert run_count(sessions) == 0


def test_missing_csrf_is_refused(
    operator_client: FlaskClient, sessions: sessionmaker[Session]
) -> None:
    data = {"hosts": ["localhost"], "check": "1", "confirm": "yes"}
    assert operator_client.post("/playbooks/say_hello/run", data=data).status_code == 400
    assert run_count(sessions) == 0


def test_unknowns_are_404(operator_client: FlaskClient, csrf_token: Token) -> None:
    assert operator_client.get("/playbooks/nope/run").status_code == 404
    data = form(csrf_token(operator_client), hosts=["localhost"])
    assert operator_client.post("/playbooks/nope/run", data=data).status_code == 404
    assert operator_client.get("/playbooks/runs/no-such-run").status_code == 404
    assert operator_client.get("/playbooks/runs/no-such-run/progress").status_code == 404


def test_signed_out_is_sent_to_login(client: FlaskClient) -> None:
    response = client.get("/playbooks")
    assert response.status_code == 302
    assert "/login" in response.headers["Location"]


def test_busy_host_is_409(
    operator_client: FlaskClient,
    csrf_token: Token,
    settings: Settings,
    sessions: sessionmaker[Session],
) -> None:
    held = HostLocks(settings.locks_dir).acquire(["localhost"], "a test")
    try:
        data = form(csrf_token(operator_client), hosts=["localhost"], check="1", confirm="yes")
        response = operator_client.post("/playbooks/say_hello/run", data=data)
    finally:
        held.release()
    assert response.status_code == 409
    assert "a test" in response.text
    assert run_count(sessions) == 0
