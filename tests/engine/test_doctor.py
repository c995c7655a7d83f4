"""``autosre doctor`` against real parts: Prometheus scraping a real node_exporter whose
series match a localhost inventory, Ansible over the local connection, a migrated SQLite
store, a real policy and playbooks, and the fake OpenAI-compatible server for the model.

All pass first; then one broken piece at a time is named and the exit status is 1.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from autosre.cli import main
from engine.doctor.report import Finding, Outcome, Report, fail, names, ok, skip
from engine.doctor.run import Check, run_checks
from engine.store import open_engine
from engine.store.migrate import downgrade
from engine.store.schema import HEAD, REVISIONS
from tests.fixtures.ansible import local_inventory
from tests.fixtures.fake_llm import FakeOpenAI, Reply, Status
from tests.fixtures.prometheus import NodeExporter, PrometheusServer, free_port
from tests.fixtures.store import migrated_sqlite

POLICY = """\
version: 2
signals:
  high_cpu:
    query: '100 * (1 - avg by (instance) (irate(node_cpu_seconds_total{{mode="idle"}}[{window}])))'
    trigger: 80
    clear: 50
    window: 3s
    sustain: 10s
    step: 1s
    stale_after: 5s
    ladder: [restart_web]
  memory_pressure:
    query: >-
      max by (instance) (100 * (1 - node_memory_MemAvailable_bytes / node_memory_MemTotal_bytes))
    trigger: 85
    clear: 75
    window: 1s
    sustain: 5s
    step: 1s
    stale_after: 5s
    ladder: [free_memory]
actions:
  restart_web:
    playbook: restart_web.yml
    description: Say that the web server would restart.
    timeout: 30s
  free_memory:
    playbook: free_memory.yml
    description: Say that memory would be freed.
    timeout: 30s
"""
PLAYBOOK = """\
- name: {name}
  hosts: all
  gather_facts: false
  tasks:
    - name: Say so
      ansible.builtin.debug:
        msg: {name}
"""
BROKEN = (
    "- name: broken\n  hosts: all\n  tasks:\n    - ansible.builtin.debug:\n      msg: [unclosed\n"
)


@pytest.fixture(scope="module")
def prometheus(
    node_exporter: NodeExporter, module_prometheus_factory: Callable[..., PrometheusServer]
) -> PrometheusServer:
    """A real Prometheus scraping the real node_exporter every second (instance 127.0.0.1:port)."""
    server = module_prometheus_factory([node_exporter.address], scrape_interval="1s")
    server.wait_for_series('node_cpu_seconds_total{mode="idle"}')
    server.wait_for_series("node_memory_MemAvailable_bytes")
    # irate needs two scrapes in its 3 s window.
    deadline = time.monotonic() + 15
    while not server.query('irate(node_cpu_seconds_total{mode="idle"}[3s])'):
        assert time.monotonic() < deadline, "no irate within 15 s"
        time.sleep(0.2)
    return server


class Rig:
    """The files and settings of one doctor run; each test breaks one piece."""

    def __init__(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
        self.tmp_path = tmp_path
        self.books = tmp_path / "playbooks"
        self.books.mkdir()
        for name in ("restart_web", "free_memory"):
            (self.books / f"{name}.yml").write_text(PLAYBOOK.format(name=name))
        self.policy = tmp_path / "policy.yaml"
        self.policy.write_text(POLICY)
        self.inventory = local_inventory(tmp_path / "inventory.yml", "web1")  # 127.0.0.1
        self.store = migrated_sqlite(tmp_path / "data" / "autosre.db")
        settings = {
            "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
            "AUTOSRE_POLICY": str(self.policy),
            "AUTOSRE_PLAYBOOK_DIR": str(self.books),
            "AUTOSRE_INVENTORY": str(self.inventory),
            **env,
        }
        for name, value in settings.items():
            monkeypatch.setenv(name, value)

    def doctor(self, capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, Report]:
        """Run ``autosre doctor --json``; its status and its report, read back."""
        code = main(["doctor", "--json", "--timeout", "20", *args])
        body = json.loads(capsys.readouterr().out)
        findings = [Finding(c["check"], Outcome(c["outcome"]), c["detail"]) for c in body["checks"]]
        return code, Report(findings)


@pytest.fixture
def rig(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    prometheus: PrometheusServer,
    fake_openai: FakeOpenAI,
) -> Iterator[Rig]:
    yield Rig(
        tmp_path,
        monkeypatch,
        AUTOSRE_PROMETHEUS_URL=prometheus.url,
        AUTOSRE_PLANNER="openai",
        AUTOSRE_LLM_BASE_URL=fake_openai.url,
        AUTOSRE_LLM_MODEL=fake_openai.model,
        OPENAI_API_KEY=fake_openai.api_key,
    )


def outcomes(report: Report) -> dict[str, Outcome]:
    return {f.check: f.outcome for f in report.findings}


def detail(report: Report, check: str) -> str:
    return next(f.detail for f in report.findings if f.check == check)


ALL_OK = {
    "store": Outcome.OK,
    "policy": Outcome.OK,
    "prometheus high_cpu": Outcome.OK,
    "prometheus memory_pressure": Outcome.OK,
    "ansible": Outcome.OK,
    "model": Outcome.OK,
}


def test_every_check_passes_on_a_healthy_setup(
    rig: Rig, capsys: pytest.CaptureFixture[str], fake_openai: FakeOpenAI
) -> None:
    code, report = rig.doctor(capsys)
    assert outcomes(report) == ALL_OK, report.lines()
    assert code == 0
    assert "1 host(s) have series" in detail(report, "prometheus high_cpu")
    assert detail(report, "ansible") == "1 host(s) answer ping"
    assert len(fake_openai.requests) == 1  # one tiny request, through the real client


def test_a_host_without_series_is_named(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    """web2 (127.0.0.2, local connection) answers ping but Prometheus has nothing of it."""
    local_inventory(rig.inventory, "web1", "web2")
    code, report = rig.doctor(capsys)
    assert code == 1
    assert outcomes(report) == ALL_OK | {
        "prometheus high_cpu": Outcome.FAIL,
        "prometheus memory_pressure": Outcome.FAIL,
    }
    assert "1 of 2 host(s) have no series by instance: web2" in detail(
        report, "prometheus high_cpu"
    )


def test_a_store_one_migration_behind_is_named(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    engine = open_engine(rig.store)
    try:
        downgrade(engine, REVISIONS[-2])
    finally:
        engine.dispose()
    code, report = rig.doctor(capsys)
    assert code == 1
    assert outcomes(report) == ALL_OK | {"store": Outcome.FAIL}
    behind = f"has schema {REVISIONS[-2]}, this AutoSRE needs {HEAD}: run `autosre db upgrade`"
    assert behind in detail(report, "store")


def test_a_playbook_with_a_syntax_error_is_named(
    rig: Rig, capsys: pytest.CaptureFixture[str]
) -> None:
    (rig.books / "free_memory.yml").write_text(BROKEN)
    code, report = rig.doctor(capsys)
    assert code == 1
    assert outcomes(report) == {k: v for k, v in ALL_OK.items() if k != "policy"} | {
        "policy free_memory.yml": Outcome.FAIL
    }
    assert detail(report, "policy free_memory.yml").startswith("--syntax-check failed:")


def test_prometheus_down_is_named(
    rig: Rig, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Nothing listens on the configured port: each signal kind's line says so."""
    monkeypatch.setenv("AUTOSRE_PROMETHEUS_URL", f"http://127.0.0.1:{free_port()}")
    code, report = rig.doctor(capsys)
    assert code == 1
    assert outcomes(report) == ALL_OK | {
        "prometheus high_cpu": Outcome.FAIL,
        "prometheus memory_pressure": Outcome.FAIL,
    }
    assert "refused" in detail(report, "prometheus high_cpu").lower()


def test_an_unreachable_host_is_named(rig: Rig, capsys: pytest.CaptureFixture[str]) -> None:
    """web9 is reached over SSH on a port where nothing listens."""
    text = rig.inventory.read_text() + (
        f"    web9:\n      ansible_host: 127.0.0.1\n      ansible_port: {free_port()}\n"
        "      ansible_connection: ssh\n      ansible_ssh_common_args: -o BatchMode=yes\n"
    )
    rig.inventory.write_text(text)
    code, report = rig.doctor(capsys)
    assert code == 1
    assert outcomes(report)["ansible"] is Outcome.FAIL
    assert detail(report, "ansible") == "1 of 2 host(s) answer ping; unreachable: web9"


def test_a_model_that_fails_is_named_and_a_slow_one_is_bounded(
    rig: Rig, capsys: pytest.CaptureFixture[str], fake_openai: FakeOpenAI
) -> None:
    fake_openai.script(Status(503, "\x1b]0;owned\x07overloaded"))
    code = main(["doctor", "--timeout", "20"])
    out = capsys.readouterr().out
    assert code == 1
    assert "\x1b" not in out and "\x07" not in out  # the server's text, made harmless
    model = next(line for line in out.splitlines() if line.split()[1:2] == ["model"])
    assert model.startswith("FAIL") and "HTTP 503" in model
    fake_openai.script(Reply(delay=30))
    started = time.monotonic()
    code, report = rig.doctor(capsys, "--timeout", "2")
    assert time.monotonic() - started < 15
    assert code == 1 and outcomes(report)["model"] is Outcome.FAIL
    assert "timeout" in detail(report, "model")


def test_the_rules_planner_skips_the_model_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No Prometheus, no model configured: both skipped, the rest still pass (exit 0)."""
    monkeypatch.delenv("AUTOSRE_PROMETHEUS_URL", raising=False)
    monkeypatch.setenv("AUTOSRE_PLANNER", "rules")
    code, report = Rig(tmp_path, monkeypatch).doctor(capsys)
    assert code == 0
    assert outcomes(report) == {
        "store": Outcome.OK,
        "policy": Outcome.OK,
        "prometheus": Outcome.SKIP,
        "ansible": Outcome.OK,
        "model": Outcome.SKIP,
    }
    assert report.summary() == "all checks pass (3 ok, 0 failed, 2 skipped)"


def test_bad_input_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(["doctor", "--timeout", "0"])
    assert exited.value.code == 2
    assert "--timeout" in capsys.readouterr().err


# -- the pure core ------------------------------------------------------------------


def test_a_check_that_hangs_is_a_failure_not_a_wait() -> None:
    def hang() -> list[Finding]:
        time.sleep(30)
        return [ok("slow", "never")]

    def boom() -> list[Finding]:
        raise RuntimeError("a bug")

    started = time.monotonic()
    report = run_checks(
        [
            Check("slow", hang, 0.2),
            Check("quick", lambda: [ok("quick", "fine")], 5),
            Check("buggy", boom, 5),
        ],
        grace=0.1,
    )
    assert time.monotonic() - started < 5
    assert [(f.check, f.outcome, f.detail) for f in report.findings] == [
        ("slow", Outcome.FAIL, "no answer within 0.2s"),
        ("quick", Outcome.OK, "fine"),
        ("buggy", Outcome.FAIL, "RuntimeError: a bug"),
    ]
    assert report.exit_code == 1


def test_report_lines_and_long_name_lists() -> None:
    report = Report([ok("store", "fine"), skip("model", "not configured"), fail("x", "bad")])
    assert report.lines() == [
        "ok    store  fine",
        "skip  model  not configured",
        "FAIL  x      bad",
        "1 failed (1 ok, 1 failed, 1 skipped)",
    ]
    assert names([f"web{i:02d}" for i in range(12)]) == (
        "web00, web01, web02, web03, web04, web05, web06, web07, web08, web09 and 2 more"
    )
    as_json: dict[str, Any] = report.as_json()
    assert as_json["ok"] is False and len(as_json["checks"]) == 3
