"""Reloading the policy: SIGHUP and `autosre policy reload` on a real `autosre run` process.

The engine runs as a subprocess on a SQLite store of its own, reading this machine's disk
(psutil) with a threshold every disk passes, so an incident opens at once; its only action
is never at `auto` here, so nothing runs on this machine.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from engine.errors import PolicyError
from engine.policy.load import parse_policy
from engine.policy_reload import (
    FAILED,
    RELOADED,
    REQUEST_STAT,
    file_digest,
    merge_live,
    request_reload,
)
from engine.record.audit import AuditLog
from engine.record.recorder import Recorder
from engine.store import open_store
from engine.store.models import Decision, EngineStat, Event
from tests.fixtures.reads import list_approvals, list_runs
from tests.fixtures.store import migrated_sqlite

ROOT = Path(__file__).resolve().parents[2]
AUTOSRE = str(Path(sys.executable).parent / "autosre")
POLICY = """
version: 2
signals:
  disk_full: {path: /, trigger: 1, clear: 0.5, window: 1s, sustain: 0s, step: 1s,
              stale_after: 5s, ladder: [clean_disk]}
actions:
  clean_disk: {playbook: clean_disk.yml, description: clean the disk, timeout: 60s}
trust: {actions: {clean_disk: LEVEL}}
remediation: {cooldown: 1h, max_attempts: 1, stage_runs: false, approval_timeout: 10m}
"""
INVENTORY = """
all:
  children:
    box:
      hosts:
        me: {ansible_connection: local}
"""
WAIT = 30.0  # seconds: the longest any step of the engine may take here


class Box:
    """Files, environment and store of one engine process."""

    def __init__(self, tmp_path: Path) -> None:
        self.policy = tmp_path / "policy.yaml"
        (tmp_path / "inventory.yml").write_text(INVENTORY)
        url = migrated_sqlite(tmp_path / "data" / "autosre.db")
        self.env = {
            **os.environ,
            "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
            "AUTOSRE_POLICY": str(self.policy),
            "AUTOSRE_INVENTORY": str(tmp_path / "inventory.yml"),
            "AUTOSRE_PLAYBOOK_DIR": str(ROOT / "playbooks"),
            "AUTOSRE_INTERVAL": "0.5",
            "AUTOSRE_LOG_LEVEL": "INFO",
        }
        for name in ("AUTOSRE_PROMETHEUS_URL", "AUTOSRE_DATABASE_URL", "AUTOSRE_LOCAL_HOST"):
            self.env.pop(name, None)
        self.sessions = open_store(url)
        self.recorder = Recorder(self.sessions, AuditLog(tmp_path / "audit.jsonl"))
        self.log = tmp_path / "engine.log"
        self.process: subprocess.Popen[bytes] | None = None

    def write(self, level: str) -> None:
        self.policy.write_text(POLICY.replace("LEVEL", level))

    def start(self) -> None:
        with self.log.open("wb") as out:
            self.process = subprocess.Popen(
                [AUTOSRE, "run"], env=self.env, stdout=out, stderr=subprocess.STDOUT
            )

    def hangup(self) -> None:
        assert self.process is not None and self.process.poll() is None, self.log.read_text()
        self.process.send_signal(signal.SIGHUP)

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [AUTOSRE, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=WAIT + 30,
            check=False,
        )

    def until(self, what: str, found: Callable[[], Any]) -> Any:
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            value = found()
            if value:
                return value
            assert self.process is None or self.process.poll() is None, self.log.read_text()
            time.sleep(0.1)
        raise AssertionError(f"timed out waiting for {what}\n{self.log.read_text()}")

    def decisions(self) -> list[tuple[str, str | None]]:
        with self.sessions() as session:
            rows = session.scalars(select(Decision).order_by(Decision.id)).all()
            return [(row.rule, row.trust) for row in rows]

    def events(self, kind: str) -> list[Event]:
        with self.sessions() as session:
            return list(session.scalars(select(Event).where(Event.kind == kind)).all())

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=WAIT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)
        self.sessions.kw["bind"].dispose()


@pytest.fixture
def box(tmp_path: Path) -> Iterator[Box]:
    made = Box(tmp_path)
    yield made
    made.stop()


def test_sighup_and_the_command_reload_a_running_engine_and_a_bad_file_keeps_the_old(
    box: Box,
) -> None:
    box.write("propose")
    box.start()
    (pending,) = box.until("an approval", lambda: list_approvals(box.sessions))
    assert box.decisions() == [("trust_propose", "propose")]

    # SIGHUP applies a changed level: the approval now meets observe, which no one beats.
    box.write("observe")
    box.hangup()
    (reloaded,) = box.until("the reload", lambda: box.events(RELOADED))
    assert reloaded.data["digest"] == file_digest(box.policy)
    assert reloaded.data["needs_restart"] == []
    box.recorder.approvals.decide(pending["id"], approve=True, by="alice", at=time.time())
    box.until("the next decision", lambda: len(box.decisions()) == 2)
    assert box.decisions()[-1] == ("trust_observe", "observe")
    assert list_runs(box.sessions) == []

    # A broken file: the old policy stays, and the engine says why (log and store).
    box.write("sometimes")
    box.hangup()
    (failed,) = box.until("the refusal", lambda: box.events(FAILED))
    assert "trust.actions.clean_disk" in failed.data["error"]
    assert failed.data["digest"] == reloaded.data["digest"]  # still the one it runs
    assert "policy reload refused, the running policy stays" in box.log.read_text()
    assert "trust.actions.clean_disk" in box.log.read_text()

    # The command refuses the same file before asking anyone: exit 2 naming the field.
    refused = box.cli("policy", "reload", "--wait", "5")
    assert refused.returncode == 2, refused
    assert "trust.actions.clean_disk" in refused.stderr
    assert "Traceback" not in refused.stderr
    assert len(box.events(RELOADED)) == 1

    # A good file: the running engine answers through the store with the file's digest.
    box.write("propose")
    answered = box.cli("policy", "reload", "--wait", str(WAIT))
    assert answered.returncode == 0, answered
    assert f"digest {file_digest(box.policy)}" in answered.stdout
    assert len(box.events(RELOADED)) == 2
    assert box.process is not None and box.process.poll() is None


def test_the_command_says_so_when_no_engine_answers(box: Box) -> None:
    box.write("propose")
    done = box.cli("policy", "reload", "--wait", "0.5")
    assert done.returncode == 1
    assert "no engine answered within 0.5s" in done.stdout


def policy(level: str, **changes: Any) -> Any:
    data = yaml.safe_load(POLICY.replace("LEVEL", level))
    for key, value in changes.items():
        data[key] = value
    return parse_policy(data)


def test_sections_built_at_start_are_kept_and_named_as_needing_a_restart() -> None:
    old = policy("propose")
    signals = old.model_dump()["signals"]
    signals["disk_full"]["trigger"] = 50.0
    remediation = {"max_attempts": 1, "stage_runs": False, "max_concurrent": 9}
    new = policy("observe", signals=signals, remediation=remediation)
    merged, restart = merge_live(old, new, source="p.yaml")
    assert restart == ["signals", "remediation.max_concurrent"]
    assert merged.signals == old.signals
    assert merged.remediation.max_concurrent == old.remediation.max_concurrent
    assert merged.remediation.cooldown == new.remediation.cooldown  # the rest of it applies
    assert str(merged.trust.level("clean_disk")) == "observe"  # the rest applies at once


def test_a_reload_that_leaves_the_running_ladder_without_its_action_is_refused() -> None:
    old = policy("propose")
    data = yaml.safe_load(POLICY.replace("LEVEL", "auto"))
    data["actions"] = {"other": {"playbook": "clean_disk.yml", "description": "x"}}
    data["signals"]["disk_full"]["ladder"] = ["other"]
    data["signals"]["disk_full"]["trigger"] = 60
    data["trust"] = {"actions": {"other": "auto"}}
    with pytest.raises(PolicyError, match=r"'clean_disk' is not in actions \(with signals"):
        merge_live(old, parse_policy(data), source="p.yaml")


@pytest.mark.parametrize("stray", [float("inf"), -1e300, 1e300])  # (SQLite stores no NaN)
def test_a_stray_request_value_never_wedges_later_requests(box: Box, stray: float) -> None:
    with box.sessions() as session, session.begin():
        session.merge(EngineStat(name=REQUEST_STAT, value=stray, updated_at=datetime.now(UTC)))
    first = request_reload(box.sessions, 1000.0)
    assert first == 1000.0
    assert request_reload(box.sessions, 999.0) > first  # a later request is always newer
