"""The chaos scenarios every release must pass, end to end with real services:
Prometheus (1 s scrapes) + node_exporter + nginx + ansible-runner + the `autosre` CLI.

Waits are counted in engine ticks (``wait_ticks``), not seconds: on a busy machine a tick
may take longer than its 1 s interval. The scenarios that never stop Prometheus share one;
the ones that stop it have their own, all started together. (A host without series is
never touched: tests/integration/test_unknown_hosts.py, which does not need a quiet CPU.)"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from engine.execute.scratch import scratch_root
from tests.fixtures.ansible import processes_naming
from tests.integration.harness import (
    Store,
    chaos,
    cli_json,
    engine_process,
    lab_env,
    wait_for,
    wait_ticks,
)

pytestmark = [pytest.mark.integration, pytest.mark.serial]

CPU_QUERY = 'node_cpu_seconds_total{mode="idle"}'
# The lab policy's CPU expression (window 3s), above its trigger (80 %).
CPU_HIGH = '100 * (1 - avg by (instance) (irate(node_cpu_seconds_total{mode="idle"}[3s]))) > 80'
CPU_CALM = CPU_HIGH.replace("> 80", "< 50")  # below the lab policy's clear
# The scenarios that need a burn to be acted on watch a shorter window: what they prove
# does not depend on its length, and every second of it is waited for.
SHORT = 3
SHORT_SUSTAIN = f"{SHORT}s"


OWN_PROMETHEUS = 2  # scenarios below that stop Prometheus, each on a server of its own


def _scraping(factory: Callable[..., Any], node_exporter: Any) -> Any:
    server = factory([node_exporter.address], scrape_interval="1s")
    server.wait_for_series(CPU_QUERY, timeout=30)
    return server


@pytest.fixture(scope="module")
def _prometheus_pool(
    node_exporter: Any, module_prometheus_factory: Callable[..., Any]
) -> list[Any]:
    """The scenarios' Prometheus servers, started together (each takes seconds to be ready):
    the first is shared, the others wait for a scenario that stops one."""
    with ThreadPoolExecutor() as pool:
        return list(
            pool.map(
                lambda _: _scraping(module_prometheus_factory, node_exporter),
                range(1 + OWN_PROMETHEUS),
            )
        )


def _calm(server: Any) -> Any:
    # Every server saw the burns of the tests before (CPU is the whole host's), and a fresh
    # engine would take a burn that just ended for one of its own.
    wait_for(
        "the CPU to calm down after the tests before",
        lambda: server.query(CPU_CALM) or None,
        timeout=30,
        every=0.2,
    )
    return server


@pytest.fixture
def lab(
    _prometheus_pool: list[Any], node_exporter: Any, prometheus_factory: Callable[..., Any]
) -> Any:
    """A Prometheus of the test's own (it may stop it), scraping this host every second."""
    if len(_prometheus_pool) > 1:
        return _calm(_prometheus_pool.pop())
    return _calm(_scraping(prometheus_factory, node_exporter))  # more stoppers than spares


@pytest.fixture
def shared_lab(_prometheus_pool: list[Any]) -> Any:
    """The Prometheus of the scenarios that never stop it, scraping this host every second."""
    return _calm(_prometheus_pool[0])


def _incident(store: Store, host: str, statuses: set[str]) -> dict[str, Any] | None:
    for incident in store.incidents(host):
        if incident["status"] in statuses:
            return incident
    return None


def test_sustained_cpu_cured_by_nginx_restart(
    tmp_path: Path, shared_lab: Any, nginx_service: Any
) -> None:
    env = lab_env(tmp_path, shared_lab.url, sustain=SHORT_SUSTAIN)
    store = Store(tmp_path / "data")
    old_pid = nginx_service.pid()
    with engine_process(env, tmp_path / "engine.log"):
        with chaos(env, "cpu", "--seconds", "90", log=tmp_path / "chaos.log") as burn:
            resolved = wait_for(
                "the incident to be resolved",
                lambda: _incident(store, "web1", {"resolved", "escalated", "failed"}),
                timeout=120,
            )
            burn.wait(timeout=30)
        assert resolved["status"] == "resolved", store.detail(resolved["id"])
        assert resolved["action"] == "restart_nginx"
        assert resolved["cpu_before"] > 80
        assert resolved["cpu_after"] < 50
        assert nginx_service.pid() != old_pid, "nginx's master pid did not change"
        assert "nginx_restarted" in (tmp_path / "chaos.log").read_text()
        detail = store.detail(resolved["id"])
        kinds = [event["kind"] for event in detail["timeline"]]
        for step in ("detected", "decided", "remediating", "run_ended", "verified", "resolved"):
            assert step in kinds, kinds
        assert [r["status"] for r in detail["runs"]] == ["successful"]
        assert detail["decisions"][0]["verdict"] == "execute"
        assert detail["decisions"][0]["outcome"] == "recovered"
        # web2 has no series: UNKNOWN, never an incident, never a run.
        assert store.incidents("web2") == []
        assert all(run["hosts"] == ["web1"] for run in store.runs())
    listed = cli_json(env, "incidents", "list", "--json")
    assert listed[0]["id"] == resolved["id"]
    assert set(listed[0]) >= {
        "id",
        "host",
        "kind",
        "status",
        "action",
        "opened_at",
        "closed_at",
        "cpu_before",
        "cpu_after",
    }
    assert listed[0]["opened_at"].endswith("Z")
    audit = (tmp_path / "data" / "audit.jsonl").read_text().splitlines()
    assert any('"kind": "resolved"' in line for line in audit)
    assert "stopped" in (tmp_path / "engine.log").read_text()
    store.close()


def test_repeated_failed_recoveries_escalate(
    tmp_path: Path, shared_lab: Any, nginx_service: Any
) -> None:
    env = lab_env(tmp_path, shared_lab.url, sustain=SHORT_SUSTAIN)
    store = Store(tmp_path / "data")
    log = tmp_path / "engine.log"
    with (
        engine_process(env, log),
        chaos(env, "cpu", "--stubborn", "--seconds", "150", log=tmp_path / "chaos.log"),
    ):
        escalated = wait_for(
            "the incident to escalate",
            lambda: _incident(store, "web1", {"escalated", "resolved", "failed"}),
            timeout=140,
        )
        assert escalated["status"] == "escalated", store.detail(escalated["id"])
        runs_then = len(store.runs())
        # The burn goes on and the engine must keep its hands off. The host is still high,
        # so any new incident, decision and run would come on the next tick (a run starts
        # in the tick that decides it): three ticks give it every chance.
        wait_ticks(log, 3)
        assert len(store.runs()) == runs_then
        assert _incident(store, "web1", {"open", "remediating"}) is None
    detail = store.detail(escalated["id"])
    assert [run["action"] for run in detail["runs"]] == ["restart_nginx", "rollback_nginx"]
    outcomes = [d["outcome"] for d in detail["decisions"] if d["verdict"] == "execute"]
    assert all(outcome in {"not_recovered", "run_failed"} for outcome in outcomes), outcomes
    assert detail["decisions"][-1]["verdict"] == "escalate"
    assert "ladder exhausted" in detail["decisions"][-1]["rationale"]
    store.close()


def test_prometheus_down_means_no_action(tmp_path: Path, lab: Any, nginx_service: Any) -> None:
    window = 6  # sustain, seconds and ticks: longer than the high data the engine will see
    env = lab_env(tmp_path, lab.url, sustain=f"{window}s")
    store = Store(tmp_path / "data")
    old_pid = nginx_service.pid()
    log = tmp_path / "engine.log"
    with engine_process(env, log):
        with chaos(env, "cpu", "--stubborn", "--seconds", "60", log=tmp_path / "chaos.log"):
            # High in the data the engine reads, for a tick: not yet for the whole sustain
            # window, and Prometheus stops before it could be.
            wait_for("the burn in Prometheus", lambda: lab.query(CPU_HIGH) or None, 20, 0.2)
            wait_ticks(log, 1)
            lab.stop()
            wait_for(
                "web1 to become UNKNOWN",
                lambda: (
                    "web1 NORMAL -> UNKNOWN" in log.read_text()
                    or "web1 HIGH_CPU -> UNKNOWN" in log.read_text()
                    or None
                ),
                20,
            )
            # Burning with no data for a whole sustain window after the data stopped: far
            # past the end of the window that began with the first high sample.
            wait_ticks(log, window)
        # The rise may have staged a preflight; with the data gone it is discarded unreleased.
        assert {run["status"] for run in store.runs()} <= {"discarded"}, store.runs()
        assert all(i["status"] != "remediating" for i in store.incidents())
        assert nginx_service.pid() == old_pid
        text = log.read_text()
        assert text.count("prometheus unreachable") == 1, "outage must be logged once"
        assert "web2 " in text and "UNKNOWN" in text
    store.close()


def released(store: Store) -> list[dict[str, Any]]:
    """The runs that ran (a staged run counts once the verdict released it)."""
    return [run for run in store.runs() if run["status"] not in ("staged", "discarded")]


def test_partial_information_with_the_gemini_planner(
    tmp_path: Path, lab: Any, nginx_service: Any, fake_gemini: Any
) -> None:
    """Decision under partial information, with Gemini (fake server) as the planner:
    the model answers nonsense, one host has no data, then Prometheus goes away."""
    fake_gemini.script(
        '{"action": "wipe_disk", "confidence": 1.0, "rationale": "as the label says"}'
    )
    env = lab_env(
        tmp_path,
        lab.url,
        sustain=SHORT_SUSTAIN,
        AUTOSRE_PLANNER="gemini",
        AUTOSRE_LLM_MODEL=fake_gemini.model,
        AUTOSRE_LLM_BASE_URL=fake_gemini.url,
        AUTOSRE_LLM_TIMEOUT="3",
        GEMINI_API_KEY=fake_gemini.api_key,
    )
    store = Store(tmp_path / "data")
    log = tmp_path / "engine.log"
    with (
        engine_process(env, log),
        chaos(env, "cpu", "--stubborn", "--seconds", "90", log=tmp_path / "chaos.log"),
    ):
        first_run = wait_for("a first run", lambda: released(store) or None, 60)
        assert first_run[-1]["action"] == "restart_nginx"  # the rules stood in for "wipe_disk"
        lab.stop()
        wait_for("web1 UNKNOWN", lambda: "web1 HIGH_CPU -> UNKNOWN" in log.read_text() or None, 20)
        runs_then = len(store.runs())
        # Burning, no data: nothing new may run for longer than a sustain window.
        wait_ticks(log, SHORT + 2)
        assert len(store.runs()) == runs_then
    assert all(run["action"] in {"restart_nginx", "rollback_nginx"} for run in store.runs())
    assert store.incidents("web2") == []
    incident = store.incidents("web1")[-1]
    detail = store.detail(incident["id"])
    first = detail["decisions"][0]
    assert first["planner"] == "rules"
    assert "not whitelisted" in first["fallback"]
    assert first["provider"] == "gemini"
    assert "wipe_disk" in first["reply"]
    assert fake_gemini.requests, "the engine asked the model"
    for recorded in fake_gemini.requests:
        assert fake_gemini.api_key not in json.dumps(recorded.body)
    assert fake_gemini.api_key not in (tmp_path / "data" / "audit.jsonl").read_text()
    assert fake_gemini.api_key not in log.read_text()
    store.close()


def _moment_reached(store: Store, moment: str) -> bool:
    """The point of the remediation where the engine is to be killed."""
    incidents = store.incidents("web1")
    if not incidents:
        return False
    detail = store.detail(incidents[0]["id"])
    released = [r for r in detail["runs"] if r["status"] not in ("staged", "discarded")]
    if moment == "opened":
        return True
    if moment == "decided":
        return any(d["verdict"] == "execute" for d in detail["decisions"])
    if moment == "mid_run":
        return any(r["status"] == "running" for r in released)
    return any(r["ended_at"] for r in released) and incidents[0]["status"] != "resolved"


# Twenty moments: the incident just opened, its execute decision recorded and then 0 to
# 4 s later in quarter seconds (before, during and after the playbook's restart), a run
# seen running, and a run ended but not yet verified.
KILL_AT = [
    ("opened", 0.0),
    *[("decided", quarter / 4) for quarter in range(17)],
    ("mid_run", 0.0),
    ("after_run", 0.0),
]


@pytest.mark.parametrize(("moment", "later"), KILL_AT, ids=[f"{m}+{d:g}s" for m, d in KILL_AT])
def test_an_engine_killed_mid_remediation_loses_nothing_and_runs_nothing_twice(
    tmp_path: Path, shared_lab: Any, nginx_service: Any, moment: str, later: float
) -> None:
    env = lab_env(tmp_path, shared_lab.url, sustain=SHORT_SUSTAIN)
    store = Store(tmp_path / "data")
    old_pid = nginx_service.pid()
    with chaos(env, "cpu", "--seconds", "120", log=tmp_path / "chaos.log"):
        with engine_process(env, tmp_path / "engine-1.log") as first:
            wait_for(f"the moment {moment}", lambda: _moment_reached(store, moment) or None, 120,
                     every=0.05)  # fmt: skip
            time.sleep(later)
            first.kill()  # SIGKILL: no shutdown, no cleanup
            first.wait(timeout=10)
        with engine_process(env, tmp_path / "engine-2.log"):
            closed = wait_for(
                "the incident to close after the restart",
                lambda: _incident(store, "web1", {"resolved", "escalated", "failed"}),
                timeout=120,
            )
    incidents = store.incidents("web1")
    assert [i["id"] for i in incidents] == [closed["id"]], "an incident was lost or doubled"
    detail = store.detail(closed["id"])
    assert closed["status"] == "resolved", detail
    assert nginx_service.pid() != old_pid, "nginx was never restarted"
    released = [r for r in detail["runs"] if r["status"] not in ("staged", "discarded")]
    executes = [d for d in detail["decisions"] if d["verdict"] == "execute"]
    ran = [d["run_id"] for d in executes if d["run_id"] is not None]
    assert len(ran) == len(set(ran)) == len(released), "a decision ran twice, or a run had none"
    assert all(r["status"] not in ("running", "pending") for r in detail["runs"]), detail["runs"]
    for run in detail["runs"]:
        assert not processes_naming(run["ident"]), f"run {run['ident']} left a process"
        assert not (scratch_root() / run["ident"]).exists(), "secret vars left in scratch"
    store.close()
