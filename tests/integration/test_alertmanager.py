"""Push end to end: real Prometheus evaluates a real alert rule over an exporter the test
controls, the real Alertmanager posts it to the receiver (the Flask app on a real HTTP
server), and an engine on the same store, reading the same Prometheus, resolves the
incident once: no duplicate from polling, the alert on its timeline.

Also: the shipped example rule file and Alertmanager config are accepted by the real tools.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from werkzeug.serving import make_server

from engine.components import Components
from engine.loop import Engine
from engine.metrics.prometheus import PrometheusSource
from engine.plan.rules import RulesPlanner
from engine.read.alert_events import alert_events
from engine.settings import load_settings
from engine.store import open_store
from tests.fixtures.alertmanager import start_alertmanager
from tests.fixtures.prometheus import PrometheusServer, free_port
from tests.fixtures.reads import incident_detail, list_incidents
from tests.fixtures.store import migrated_sqlite
from webui import create_app
from webui.alerts import ENVIRONMENT_KEY

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "e2e-alerts-token-" + "k" * 20
OK_PLAYBOOK = (
    "- name: Succeed\n  hosts: all\n  gather_facts: false\n  tasks:\n"
    "    - name: Say ok\n      ansible.builtin.debug:\n        msg: ok\n"
)
RULES = """
groups:
  - name: autosre-test
    rules:
      - alert: TestValueHigh
        expr: autosre_test_value > 80
        for: 1s
        labels: {autosre_kind: high_cpu}
        annotations: {summary: "value {{ $value }}"}
"""
POLICY = """
version: 2
signals:
  high_cpu:
    query: 'max by (instance) (autosre_test_value)'
    trigger: 80
    clear: 50
    window: 1s
    sustain: 0s
    step: 1s
    stale_after: 5s
    ladder: [fix]
actions:
  fix: {playbook: ok.yml, description: a fix that works, timeout: 60s}
trust: {actions: {fix: auto}}
remediation: {cooldown: 1h, max_attempts: 1, verify_timeout: 30s}
alerts: {token_env: AUTOSRE_ALERTS_TOKEN, host_label: instance, kind_label: autosre_kind}
"""


class Exporter:
    """A tiny exporter on 127.0.0.1: one gauge, set by the test."""

    def __init__(self) -> None:
        self.value = 20.0
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = f"autosre_test_value {exporter.value}\n".encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.address = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.05}
        )
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    made = Exporter()
    yield made
    made.stop()


def start_prometheus(workdir: Path, target: str, alertmanager: str) -> PrometheusServer:
    """Prometheus scraping the exporter, evaluating the rule every second, alerting to AM."""
    (workdir / "rules.yml").write_text(RULES)
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(workdir / "rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [{"job_name": "lab", "static_configs": [{"targets": [target]}]}],
    }
    (workdir / "prometheus.yml").write_text(json.dumps(config))
    server = PrometheusServer(workdir=workdir, port=free_port())
    server.start()
    return server


def wait_for(what: str, done: Callable[[], bool], timeout: float, tick: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        tick()
        time.sleep(0.2)


def test_alertmanager_push_and_polling_make_one_incident_that_resolves_once(
    tmp_path: Path, exporter: Exporter
) -> None:
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "ok.yml").write_text(OK_PLAYBOOK)
    (tmp_path / "policy.yaml").write_text(POLICY)
    (tmp_path / "inventory.yml").write_text(
        "all:\n  hosts:\n    web1:\n      ansible_connection: local\n"
        '      ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
        f'      autosre_instance: "{exporter.address}"\n'
    )
    url = migrated_sqlite(tmp_path / "data" / "autosre.db")
    settings = load_settings(
        {
            "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
            "AUTOSRE_DATABASE_URL": url,
            "AUTOSRE_POLICY": str(tmp_path / "policy.yaml"),
            "AUTOSRE_INVENTORY": str(tmp_path / "inventory.yml"),
            "AUTOSRE_PLAYBOOK_DIR": str(books),
        }
    )
    sessions = open_store(url)
    # The receiver: the web UI on a real HTTP server, its own components on the same store.
    app = create_app({"TESTING": True, "SECRET_KEY": "k" * 40}, components=Components(settings))
    app.config[ENVIRONMENT_KEY] = {"AUTOSRE_ALERTS_TOKEN": TOKEN}
    web = make_server("127.0.0.1", 0, app, threaded=True)
    web_thread = threading.Thread(target=web.serve_forever, kwargs={"poll_interval": 0.05})
    web_thread.start()
    (tmp_path / "am").mkdir()
    (tmp_path / "prom").mkdir()
    receiver = f"http://127.0.0.1:{web.server_port}/api/v1/alerts"
    alertmanager = start_alertmanager(tmp_path / "am", receiver, TOKEN)
    prometheus = start_prometheus(tmp_path / "prom", exporter.address, alertmanager.address)
    components = Components(settings, sessions=sessions)
    rule = components.policy.signal("high_cpu")
    source = PrometheusSource(
        url=prometheus.url,
        query=rule.promql,
        series=components.inventory.series_map(),
        lookback=rule.lookback,
        step=rule.step,
    )
    engine = Engine(components, metrics=source, planner=RulesPlanner(), plan_wait=10.0)
    try:
        prometheus.wait_for_series("autosre_test_value")
        engine.tick()
        exporter.value = 95.0
        started = time.monotonic()
        # The engine stays idle until Alertmanager's post is stored: push comes first.
        wait_for("the alert posted", lambda: bool(alert_events(sessions)), 30, lambda: None)
        pushed_after = time.monotonic() - started
        wait_for("an incident", lambda: bool(list_incidents(sessions)), 20, engine.tick)
        assert engine.wait_idle(60)
        exporter.value = 10.0
        resolved = lambda: list_incidents(sessions)[0]["status"] == "resolved"  # noqa: E731
        wait_for("the incident resolved", resolved, 40, engine.tick)
        # Alertmanager's resolve and re-sends come and go: still one incident, noted once.
        wait_for(
            "the alert resolved",
            lambda: any(e.status == "resolved" for e in alert_events(sessions)),
            30,
            engine.tick,
        )
        for _ in range(5):
            engine.tick()
            time.sleep(0.2)
        incidents = list_incidents(sessions)
        assert len(incidents) == 1, incidents
        detail = incident_detail(sessions, incidents[0]["id"])
        assert detail is not None and detail["status"] == "resolved"
        alerts = [e["message"] for e in detail["timeline"] if e["kind"] == "alert"]
        # The resolve may come before the engine's own verification closes it: then a hint.
        hint = "Alertmanager says TestValueHigh resolved; verification decides"
        assert alerts[0] == "Alertmanager: TestValueHigh firing", detail["timeline"]
        assert alerts[1:] in ([], [hint]), detail["timeline"]
        firing = [e for e in alert_events(sessions) if e.status == "firing"]
        assert len(firing) == 1 and firing[0].outcome == "joined"
        assert firing[0].host == "web1" and firing[0].incident_id == incidents[0]["id"]
        print(f"alert stored {pushed_after:.1f}s after the value rose")
    finally:
        engine.shutdown()
        prometheus.stop()
        alertmanager.stop()
        web.shutdown()
        web_thread.join(timeout=10)
        components.close()


def test_the_shipped_examples_are_accepted_by_the_real_tools() -> None:
    promtool, amtool = shutil.which("promtool"), shutil.which("amtool")
    if promtool is None or amtool is None:
        pytest.skip(
            "promtool or amtool is not installed (Debian prometheus, prometheus-alertmanager)"
        )
    rules = ROOT / "examples" / "prometheus" / "alert-rules.yml"
    checked = subprocess.run(
        [promtool, "check", "rules", str(rules)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "4 rules found" in checked.stdout
    config = ROOT / "examples" / "alertmanager" / "alertmanager.yml"
    checked = subprocess.run(
        [amtool, "check-config", str(config)],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    text = config.read_text()
    assert "/api/v1/alerts" in text and "credentials_file" in text
