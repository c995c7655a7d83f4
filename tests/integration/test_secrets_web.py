"""No secret reaches a viewer: every page, API answer, /metrics and download, during a
run started from the web UI and after it.

The canaries are planted as in ``test_secrets``: the engine's environment (model keys,
the session key, URLs with passwords), a ``secret: true`` var with quotes and a
backslash, and an inventory variable named like a password that the playbook prints.
"""

from __future__ import annotations

import secrets
import time
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from engine.accounts.users import create_token, create_user
from engine.settings import load_settings
from tests.fixtures.store import migrated_sqlite
from tests.integration.harness import PASSWORD, csrf, sign_in
from tests.integration.test_secrets import (
    TEST_PLAYBOOKS,
    canary,
    found,
    leak_probe_policy,
    local_inventory,
    read_tree,
)
from webui import create_app

pytestmark = pytest.mark.integration


def everything_a_viewer_sees(
    app: Flask, viewer: FlaskClient, api_token: str, ident: str, run_id: int
) -> str:
    """The text of every GET page and API answer without arguments, and the run's own."""
    paths = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if "GET" in (rule.methods or set()) and not rule.arguments and rule.endpoint != "static"
    }
    paths |= {f"/playbooks/runs/{ident}", f"/playbooks/runs/{ident}/progress"}
    paths |= {f"/api/v1/runs/{run_id}", "/api/v1/hosts?recent=true"}
    texts = []
    bearer = {"Authorization": f"Bearer {api_token}"}
    for path in sorted(paths):
        answer = viewer.get(path, headers=bearer if path.startswith("/api/") else None)
        assert answer.status_code < 500, (path, answer.status_code)
        texts.append(f"== {path}\n{answer.get_data(as_text=True)}")
    return "\n".join(texts)


def test_a_viewer_sees_no_secret_during_or_after_a_run_by_hand(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    env_canaries = {
        "GEMINI_API_KEY": canary("gemini-key"),
        "OPENAI_API_KEY": canary("openai-key"),
        "AUTOSRE_SECRET_KEY": canary("session-key") + "x" * 24,
    }
    prometheus_password = canary("prompw")
    secret_var = f"tok\"{secrets.token_hex(4)}\\'quoted"
    inventory_password = canary("invpw")
    planted = [*env_canaries.values(), prometheus_password, secret_var, inventory_password]
    policy = leak_probe_policy(tmp_path)
    inventory = local_inventory(tmp_path / "inventory.yml", db_password=inventory_password)
    for name, value in env_canaries.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AUTOSRE_PROMETHEUS_URL", f"http://prom:{prometheus_password}@127.0.0.1:9")
    monkeypatch.setenv("AUTOSRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("AUTOSRE_DATABASE_URL", raising=False)
    migrated_sqlite(tmp_path / "data" / "autosre.db")
    monkeypatch.setenv("AUTOSRE_POLICY", str(policy))
    monkeypatch.setenv("AUTOSRE_INVENTORY", str(inventory))
    monkeypatch.setenv("AUTOSRE_PLAYBOOK_DIR", str(TEST_PLAYBOOKS))
    settings = load_settings()
    app = create_app({"TESTING": True}, settings=settings)
    sessions = app.extensions["autosre"]
    try:
        create_user(sessions, "otto", PASSWORD, "operator")
        create_user(sessions, "vera", PASSWORD, "viewer")
        api_token = create_token(sessions, "vera", "leak-test")
        operator, viewer = sign_in(app, "otto"), sign_in(app, "vera")
        form = {
            "hosts": "localhost",
            "var_token": secret_var,
            "reason": "leak test",
            "confirm": "yes",
            "csrf_token": csrf(operator, "/playbooks"),
        }
        started = operator.post("/playbooks/leak_probe/run", data=form)
        assert started.status_code == 302, started.text
        ident = started.headers["Location"].rsplit("/", 1)[-1]
        run = viewer.get("/api/v1/runs", headers={"Authorization": f"Bearer {api_token}"}).json
        assert run is not None
        run_id = next(r["id"] for r in run["items"] if r["ident"] == ident)

        live_looks = 0
        deadline = time.monotonic() + 120
        while True:
            status = viewer.get(
                f"/api/v1/runs/{run_id}", headers={"Authorization": f"Bearer {api_token}"}
            ).json
            assert status is not None
            if status["status"] not in ("pending", "running"):
                break
            assert time.monotonic() < deadline, "the run did not end"
            seen = everything_a_viewer_sees(app, viewer, api_token, ident, run_id)
            assert not found(planted, seen), "a secret shown while the run is live"
            live_looks += "Show the secret var" in seen
        assert status["status"] == "successful", status
        assert live_looks >= 1, "the live view was never looked at while tasks ran"

        seen = everything_a_viewer_sees(app, viewer, api_token, ident, run_id)
        assert "token is ********" in seen
        assert not found(planted, seen)
        assert not found(planted, read_tree(settings.data_dir))
        assert not found(planted, settings.audit_log.read_text())
    finally:
        sessions.kw["bind"].dispose()
