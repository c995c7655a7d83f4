"""Secrets never reach a run dir, the audit log, the store or a log; extra vars stay data.

Canaries are planted everywhere a secret comes from (the engine's environment, URLs
with passwords, a ``secret: true`` var with quotes and a backslash, an inventory
variable named like a password), a real playbook prints them, and every file of the
data dir is searched, while the run is live and after it, for every encoding of each.
"""

from __future__ import annotations

import json
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select
from sqlalchemy.engine import make_url

from autosre.cli import main
from autosre.wiring import load_components
from engine.execute.by_hand import run_by_hand
from engine.redact import encodings
from engine.settings import load_settings
from engine.store.models import Base
from engine.types import RunResult
from tests.fixtures.postgres import own_database
from tests.fixtures.store import migrated_sqlite

ROOT = Path(__file__).resolve().parents[2]
TEST_PLAYBOOKS = ROOT / "tests" / "playbooks"
AUTOSRE = Path(sys.executable).parent / "autosre"


def canary(label: str) -> str:
    return f"{label}-{secrets.token_hex(6)}"


def found(canaries: Iterable[str], text: str) -> list[str]:
    """Every encoding of every canary that occurs in text."""
    return sorted({form for value in canaries for form in encodings(value) if form in text})


def policy_with(tmp_path: Path, actions: dict[str, Any]) -> Path:
    data = yaml.safe_load((ROOT / "policies" / "lab.yaml").read_text(encoding="utf-8"))
    data["actions"] = actions
    # Only high_cpu: the other kinds' ladders name actions this policy does not have.
    data["signals"] = {"high_cpu": {**data["signals"]["high_cpu"], "ladder": list(actions)}}
    data["trust"] = {"actions": dict.fromkeys(actions, "auto")}  # as lab.yaml's own
    path = tmp_path / "policy.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def leak_probe_policy(tmp_path: Path) -> Path:
    """A policy whose one action prints secrets, with a ``secret: true`` var ``token``."""
    return policy_with(
        tmp_path,
        {
            "leak_probe": {
                "playbook": "leak_probe.yml",
                "description": "prints secrets",
                "vars": {"token": {"pattern": r"[\s\S]{8,128}", "secret": True}},
            }
        },
    )


def local_inventory(path: Path, **host_vars: str) -> Path:
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": sys.executable,
        **host_vars,
    }
    path.write_text(yaml.safe_dump({"all": {"hosts": {"localhost": host}}}), encoding="utf-8")
    return path


def read_tree(root: Path) -> str:
    """The text of every file under root (files renamed away while listing are skipped)."""
    texts = []
    for path in sorted(root.rglob("*")):
        try:
            if path.is_file() and not path.is_symlink():
                texts.append(path.read_bytes().decode("utf-8", "replace"))
        except FileNotFoundError:
            continue
    return "\n".join(texts)


def store_text(components: Any) -> str:
    """Every value of every row of every table, as text."""
    values: list[str] = []
    with components.sessions() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                for value in row:
                    values.append(
                        value if isinstance(value, str) else json.dumps(value, default=str)
                    )
    return "\n".join(values)


def test_no_secret_reaches_the_data_dir_during_or_after_a_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, postgres_template: str
) -> None:
    env_canaries = {
        "GEMINI_API_KEY": canary("gemini-key"),
        "OPENAI_API_KEY": canary("openai-key"),
        "AUTOSRE_SECRET_KEY": canary("session-key") + "x" * 24,
    }
    prometheus_password = canary("prompw")
    database_password = canary("dbpw")
    secret_var = f"tok\"{secrets.token_hex(4)}\\'quoted"
    inventory_password = canary("invpw")
    everything = [
        *env_canaries.values(),
        prometheus_password,
        database_password,
        secret_var,
        inventory_password,
    ]

    data_dir = tmp_path / "data"
    policy = leak_probe_policy(tmp_path)
    inventory = local_inventory(tmp_path / "inventory.yml", db_password=inventory_password)
    with own_database(postgres_template, "leak") as store_url:
        database_url = make_url(store_url).set(password=database_password)
        for name, value in env_canaries.items():
            monkeypatch.setenv(name, value)
        monkeypatch.setenv(
            "AUTOSRE_PROMETHEUS_URL", f"http://prom:{prometheus_password}@127.0.0.1:9"
        )
        monkeypatch.setenv("AUTOSRE_DATABASE_URL", database_url.render_as_string(False))
        monkeypatch.setenv("AUTOSRE_DATA_DIR", str(data_dir))
        monkeypatch.setenv("AUTOSRE_POLICY", str(policy))
        monkeypatch.setenv("AUTOSRE_INVENTORY", str(inventory))
        monkeypatch.setenv("AUTOSRE_PLAYBOOK_DIR", str(TEST_PLAYBOOKS))
        components = load_components(load_settings())
        try:
            check_a_run_by_hand(components, secret_var, everything)
        finally:
            components.sessions.kw["bind"].dispose()


def check_a_run_by_hand(components: Any, secret_var: str, everything: list[str]) -> None:
    """Run the leak probe by hand, searching the data dir while it runs and after."""
    data_dir = components.settings.data_dir
    results: list[RunResult] = []

    def by_hand() -> None:
        results.append(
            run_by_hand(
                components,
                action="leak_probe",
                hosts=["localhost"],
                extra_vars={"token": secret_var},
                check=False,
                requested_by="tester",
            )
        )

    worker = threading.Thread(target=by_hand)
    live_reads = 0
    worker.start()
    try:
        while worker.is_alive():
            text = read_tree(data_dir)
            if "runner_on_ok" in text:
                live_reads += 1  # job events of the live run were read
            assert not found(everything, text), "a secret in the data dir during the run"
            time.sleep(0.02)
    finally:
        worker.join()

    result = results[0]
    assert result.status == "successful", result
    assert live_reads > 5
    artifacts = Path(result.artifact_dir)
    stdout = (artifacts / "stdout").read_text()
    assert "token is ********" in stdout and "postgresql://app:********@db" in stdout
    after = read_tree(data_dir)
    assert not found(everything, after)
    assert not found(everything, components.settings.audit_log.read_text())
    assert "run_ended" in components.settings.audit_log.read_text()
    assert not found(everything, store_text(components))
    command = json.loads((artifacts / "command").read_text())
    assert not [name for name in command["env"] if name.startswith("AUTOSRE_")]
    vars_file = Path(command["command"][command["command"].index("-e") + 1][1:])
    assert not vars_file.exists()


def test_recorder_redacts_what_it_stores_and_audits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.types import PlannerCall, Proposal, RunRequest, Verdict, VerdictKind

    model_key = canary("model-key")
    url_password = canary("urlpw")
    inventory_password = canary("hostpw")
    monkeypatch.setenv("GEMINI_API_KEY", model_key)
    monkeypatch.setenv("AUTOSRE_PROMETHEUS_URL", f"http://u:{url_password}@127.0.0.1:9")
    monkeypatch.setenv("AUTOSRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("AUTOSRE_DATABASE_URL", raising=False)
    migrated_sqlite(tmp_path / "data" / "autosre.db")
    monkeypatch.setenv("AUTOSRE_POLICY", str(ROOT / "policies" / "lab.yaml"))
    monkeypatch.setenv(
        "AUTOSRE_INVENTORY",
        str(
            local_inventory(tmp_path / "inventory.yml", ansible_become_password=inventory_password)
        ),
    )
    components = load_components(load_settings())
    recorder = components.recorder
    leaks = f"key {model_key}, {json.dumps(url_password)}, pw={inventory_password}"
    now = time.time()

    incident = recorder.incidents.open("localhost", "high_cpu", 97.0, leaks, at=now, since=now)
    call = PlannerCall("gemini", "m", 0.1, 1, prompt=leaks, reply=leaks, error=leaks)
    proposal = Proposal("restart_nginx", 0.6, leaks, "gemini", call=call, fallback=leaks)
    verdict = Verdict(VerdictKind.AWAIT_APPROVAL, "restart_nginx", leaks, "approval")
    decision = recorder.decisions.record(incident, "localhost", proposal, verdict, now)
    approval = recorder.approvals.request(
        incident, decision, "localhost", "restart_nginx", leaks, at=now, expires_at=now + 60
    )
    recorder.approvals.decide(approval, approve=False, by="tester", at=now, note=leaks)
    run = RunRequest("restart_nginx", "/x.yml", ("localhost",))
    run_id = recorder.runs.begin(
        run, ident="r-1", artifact_dir="/tmp/r-1", trigger="manual", requested_by="t", at=now
    )
    recorder.runs.end(run_id, RunResult("r-1", "error", None, "/tmp/r-1", now, now, {}, leaks))
    recorder.journal.event(
        now, "note", leaks, host="localhost", data={"detail": leaks, "token": "x-1"}
    )

    canaries = [model_key, url_password, inventory_password]
    assert not found(canaries, store_text(components))
    audit = components.settings.audit_log.read_text()
    assert "********" in audit
    assert not found(canaries, audit)
    components.sessions.kw["bind"].dispose()


def test_run_once_never_logs_a_url_password(tmp_path: Path) -> None:
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    password = canary("canarypw")
    env = {
        "PATH": str(Path(sys.executable).parent) + ":/usr/bin:/bin",
        "HOME": str(tmp_path),
        "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
        "AUTOSRE_POLICY": str(ROOT / "policies" / "lab.yaml"),
        "AUTOSRE_INVENTORY": str(ROOT / "inventory" / "lab.yml"),
        "AUTOSRE_PROMETHEUS_URL": f"http://user:{password}@127.0.0.1:{port}",
        "AUTOSRE_PROMETHEUS_TIMEOUT": "1",
        "AUTOSRE_LOG_LEVEL": "DEBUG",
    }
    migrated_sqlite(tmp_path / "data" / "autosre.db")

    done = subprocess.run(
        [str(AUTOSRE), "run", "--once"],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )

    assert done.returncode == 0, done.stderr
    assert "user:********@127.0.0.1" in done.stderr  # the URL is logged, its password not
    assert password not in done.stderr + done.stdout


def test_extra_vars_reach_the_playbook_as_literal_text(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    canary_file = tmp_path / f"templated-{secrets.token_hex(4)}"
    policy = policy_with(
        tmp_path,
        {
            "write_var": {
                "playbook": "write_var.yml",
                "description": "writes v to dest",
                "vars": {
                    "v": {"pattern": ".*"},
                    "dest": {"pattern": "/[A-Za-z0-9._/-]+"},
                },
            }
        },
    )
    monkeypatch.setenv("AUTOSRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.delenv("AUTOSRE_DATABASE_URL", raising=False)
    migrated_sqlite(tmp_path / "data" / "autosre.db")
    monkeypatch.setenv("AUTOSRE_POLICY", str(policy))
    monkeypatch.setenv("AUTOSRE_INVENTORY", str(local_inventory(tmp_path / "inventory.yml")))
    monkeypatch.setenv("AUTOSRE_PLAYBOOK_DIR", str(TEST_PLAYBOOKS))
    values = ["{{ 7*7 }}", f"{{{{ lookup('pipe','touch {canary_file}') }}}}"]

    for number, value in enumerate(values):
        dest = tmp_path / f"out-{number}.txt"
        args = ["-e", f"v={value}", "-e", f"dest={dest}"]
        code = main(["playbook", "run", "write_var", "--limit", "localhost", *args])
        assert code == 0, capsys.readouterr()
        assert dest.read_text() == value
    assert not canary_file.exists()

    capsys.readouterr()
    assert main(["policy", "check"]) == 0
    out = capsys.readouterr().out
    assert "warning: actions.write_var.vars.v: " in out
    assert "vars.dest" not in out
