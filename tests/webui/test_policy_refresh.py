"""The web UI takes the policy file again when it changes, as the engine does on a reload:
its whitelist and trust levels are the file's, and a file that does not load leaves the
one before in force (never a 503, never a half-read policy)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from engine.settings import Settings
from tests.fixtures.one_action import POLICY, one_action_settings

Token = Callable[[FlaskClient], str]
SECOND = POLICY.replace(
    "remediation:",
    "  say_bye:\n    playbook: hello.yml\n    description: Bye.\n    timeout: 1m\nremediation:",
)


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return one_action_settings(tmp_path, database_url)


def _write(settings: Settings, text: str) -> None:
    path = settings.policy
    path.write_text(text)
    stat = path.stat()  # a new mtime even within the file system's clock tick
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def _trust(page: str, action: str) -> str:
    row = page.split(f">{action}<", 1)[1].split("</tr>", 1)[0]
    found = re.search(r'data-trust><span class="badge">(\w+)</span>', row)
    assert found is not None, row
    return found.group(1)


def test_the_playbooks_page_and_runs_by_hand_follow_the_file(
    operator_client: FlaskClient,
    settings: Settings,
    csrf_token: Token,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert _trust(operator_client.get("/playbooks").text, "say_hello") == "propose"

    _write(settings, SECOND + "trust: {actions: {say_hello: auto}}\n")
    page = operator_client.get("/playbooks").text
    assert _trust(page, "say_hello") == "auto" and "say_bye" in page

    _write(settings, "version: [broken\n")  # kept out: the one before stays in force
    page = operator_client.get("/playbooks")
    assert page.status_code == 200 and _trust(page.text, "say_hello") == "auto"
    assert "the policy file changed but cannot be used" in caplog.text

    _write(settings, POLICY.replace("say_hello", "say_bye"))  # say_hello leaves the whitelist
    token = csrf_token(operator_client)
    form = {"csrf_token": token, "hosts": "localhost", "reason": "try", "check": "on"}
    refused = operator_client.post("/playbooks/say_hello/run", data=form)
    assert refused.status_code == 404
    assert "say_hello" not in operator_client.get("/playbooks").text
