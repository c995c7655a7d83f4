"""Helpers for end-to-end scenarios: the real `autosre` CLI against real services."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import yaml
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts.users import create_user
from engine.store import open_store
from tests.fixtures.reads import incident_detail, list_incidents, list_runs
from tests.fixtures.receivers import Receiver
from tests.fixtures.store import migrated_sqlite

ROOT = Path(__file__).resolve().parents[2]
AUTOSRE = Path(sys.executable).parent / "autosre"
T = TypeVar("T")

LAB_INVENTORY = """\
all:
  hosts:
    web1:
      ansible_host: 127.0.0.1
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
      # No systemd on the test machine: pinning the init system saves a lookup before the restart.
      nginx_service_manager: service
    web2:
      ansible_host: 127.0.0.2
      ansible_connection: local
      ansible_python_interpreter: "{{ ansible_playbook_python }}"
"""


def lab_env(
    tmp_path: Path, prometheus_url: str, *, sustain: str | None = None, **extra: str
) -> dict[str, str]:
    """Environment for an engine on the lab policy (with another sustain window if given), a
    two-host inventory and its own data (a store at the newest schema, as `autosre db
    upgrade` leaves it)."""
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(LAB_INVENTORY)
    policy = ROOT / "policies" / "lab.yaml"
    if sustain is not None:
        data = yaml.safe_load(policy.read_text(encoding="utf-8"))
        data["signals"]["high_cpu"]["sustain"] = sustain
        policy = tmp_path / "policy.yaml"
        policy.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    if not (tmp_path / "data" / "autosre.db").exists():
        migrated_sqlite(tmp_path / "data" / "autosre.db")
    env = dict(os.environ)
    env.update(
        AUTOSRE_DATA_DIR=str(tmp_path / "data"),
        AUTOSRE_PROMETHEUS_URL=prometheus_url,
        AUTOSRE_POLICY=str(policy),
        AUTOSRE_INVENTORY=str(inventory),
        AUTOSRE_PLAYBOOK_DIR=str(ROOT / "playbooks"),
        AUTOSRE_INTERVAL="1",
        AUTOSRE_PROMETHEUS_TIMEOUT="2",
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def wait_for(what: str, probe: Callable[[], T | None], timeout: float, every: float = 0.5) -> T:
    """Poll probe until it returns something truthy; fail naming what never happened."""
    deadline = time.monotonic() + timeout
    while True:
        value = probe()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


class Store:
    """Read access to the engine's store, as the CLI and UI see it."""

    def __init__(self, data_dir: Path) -> None:
        self.sessions: sessionmaker[Session] = open_store(f"sqlite:///{data_dir / 'autosre.db'}")

    def incidents(self, host: str | None = None) -> list[dict[str, Any]]:
        return list_incidents(self.sessions, host=host, limit=100)

    def detail(self, incident_id: int) -> dict[str, Any]:
        found = incident_detail(self.sessions, incident_id)
        assert found is not None
        return found

    def runs(self) -> list[dict[str, Any]]:
        return list_runs(self.sessions, limit=100)

    def close(self) -> None:
        bind = self.sessions.kw["bind"]
        bind.dispose()


TICK_LINE = "tick took"  # what the scheduler logs at DEBUG after each tick


def ticks(log: Path) -> int:
    """How many ticks the engine writing this log has finished."""
    return log.read_text().count(TICK_LINE)


def wait_ticks(log: Path, count: int) -> None:
    """Wait until the engine has finished ``count`` more ticks: on a busy machine a tick
    may take longer than its interval, so a fixed sleep may cover fewer ticks than it says."""
    target = ticks(log) + count
    wait_for(
        f"{count} more engine ticks",
        lambda: ticks(log) >= target or None,
        timeout=10 + 3 * count,
        every=0.1,
    )


@contextmanager
def engine_process(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`autosre run` in the background; SIGTERM at the end, and it must stop cleanly.

    It logs at DEBUG, so that ``ticks`` and ``wait_ticks`` can count its ticks."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(AUTOSRE), "run"],
            env={**env, "AUTOSRE_LOG_LEVEL": "DEBUG"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        wait_for("the engine's first tick", lambda: "START ->" in log.read_text() or None, 60)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


@contextmanager
def chaos(env: dict[str, str], *args: str, log: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`autosre chaos ARGS` in the background; SIGTERM (it cleans up) at the end, then kill."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(AUTOSRE), "chaos", *args], env=env, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=10)


def cli_json(env: dict[str, str], *args: str) -> Any:
    """Run an `autosre` command that prints JSON and parse its output."""
    done = subprocess.run(
        [str(AUTOSRE), *args], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(done.stdout)


PASSWORD = "correct horse battery staple"
CSRF_META = re.compile(r'<meta name="csrf-token" content="([^"]+)">')


def csrf(client: FlaskClient, path: str) -> str:
    """The CSRF token of the page at ``path``."""
    page = client.get(path)
    token = CSRF_META.search(page.text)
    assert token, page.text
    return token.group(1)


def sign_in(app: Flask, name: str, role: str | None = None) -> FlaskClient:
    """A client signed in as ``name`` (made first with ``role`` when one is given)."""
    if role is not None:
        create_user(app.extensions["autosre"], name, PASSWORD, role)
    client = app.test_client()
    form = {"name": name, "password": PASSWORD, "csrf_token": csrf(client, "/login")}
    answer = client.post("/login", data=form)
    assert answer.status_code == 302, answer.text
    return client


def paging(pager: Receiver, env: dict[str, str]) -> dict[str, Any]:
    """A policy's ``notifications`` that page ``pager`` (a JSON webhook) quickly; its URL
    goes into ``env``, as the policy names variables, never URLs."""
    env["AUTOSRE_T_PAGER_URL"] = f"{pager.url}/page"
    return {
        "channels": {"oncall": {"type": "webhook", "url_env": "AUTOSRE_T_PAGER_URL"}},
        "delivery": {"timeout": "2s", "backoff": "1s", "poll": "0.2s"},
    }


def assert_escalated(
    store: Store, incident: dict[str, Any], actions: list[str], pager: Receiver
) -> None:
    """Escalated after ``actions``, with the page for it delivered to ``pager``."""
    detail = store.detail(incident["id"])
    assert incident["status"] == "escalated", detail
    assert [r["action"] for r in detail["runs"]] == actions
    assert detail["decisions"][-1]["verdict"] == "escalate"
    assert "ladder exhausted" in detail["decisions"][-1]["rationale"]
    wait_for("the page", lambda: pager.received or None, timeout=30)
    path, page, _headers = pager.received[0]
    assert path == "/page"
    assert (page["event"], page["incident_id"]) == ("trigger", incident["id"])
    assert (page["host"], page["kind"], page["status"]) == (
        incident["host"],
        incident["kind"],
        "escalated",
    )


def assert_quiet(pager: Receiver) -> None:
    """A cured incident pages nobody."""
    assert pager.received == [], pager.received
