"""Cancelling a real playbook run from its page in Chromium: an operator starts a slow run by
hand, stops it with the page's button (after the confirmation dialog), and the page says
canceled, by whom; the run's processes are gone. A viewer sees no button."""

from __future__ import annotations

import re
import shutil
import sys
import time
from pathlib import Path

import psutil
import pytest
from playwright.sync_api import Page, expect

from engine.read.runs import find_run
from engine.types import RunRequest
from tests.browser.conftest import ROOT, LiveServer, signed_in
from tests.fixtures.ansible import processes_naming

NAP = "53.7"  # the slow playbook's sleep: unique, so its process can be found
SLOW = "slow_nap"
POLICY = f"""\
version: 1
detection:
  high_cpu: {{trigger: 80, clear: 50, window: 1s, sustain: 0s, step: 1s, stale_after: 3s}}
actions:
  {SLOW}:
    playbook: nap.yml
    description: Sleep a long while; changes nothing.
    timeout: 2m
  say_hello:
    playbook: hello.yml
    description: Print a greeting; changes nothing.
    timeout: 1m
remediation:
  ladder: [{SLOW}]
"""
NAP_PLAYBOOK = f"""\
- name: Nap
  hosts: all
  gather_facts: false
  tasks:
    - name: Sleep
      ansible.builtin.command:
        argv: [sleep, "{NAP}"]
      changed_when: false
"""
HELLO = """\
- name: Say hello
  hosts: all
  gather_facts: false
  tasks:
    - name: Greet
      ansible.builtin.debug:
        msg: hello
"""
INVENTORY = f"""\
all:
  hosts:
    localhost:
      ansible_connection: local
      ansible_python_interpreter: "{sys.executable}"
"""
STOP_WITHIN = 15_000  # ms: a watch round (1 s), the runner's poll, the kill, a page poll (2 s)


@pytest.fixture(scope="module")
def browser_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This module's live servers: the slow action beside a harmless one."""
    config = tmp_path_factory.mktemp("cancel-config")
    (config / "playbooks").mkdir()
    (config / "policy.yaml").write_text(POLICY)
    (config / "playbooks" / "nap.yml").write_text(NAP_PLAYBOOK)
    (config / "playbooks" / "hello.yml").write_text(HELLO)
    shutil.copy(ROOT / "playbooks" / "restart_nginx.yml", config / "playbooks")
    (config / "inventory.yml").write_text(INVENTORY)
    return config


def napping() -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", NAP]]


def live(ident: str, timeout: float = 10.0) -> list[psutil.Process]:
    """The run's processes still alive after a bounded wait (none once it is stopped)."""
    deadline = time.monotonic() + timeout
    me = psutil.Process().pid
    while True:
        found = []
        for proc in [*napping(), *processes_naming(ident)]:
            try:
                if proc.pid != me and proc.status() != psutil.STATUS_ZOMBIE:
                    found.append(proc)
            except psutil.Error:
                continue
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def start_slow_run(page: Page) -> str:
    """Run the slow action by hand through the form (not in check mode); its ident."""
    page.goto(f"/playbooks/{SLOW}/run")
    page.locator("input[name=hosts][value=localhost]").check()
    page.locator("input[name=check]").uncheck()
    page.locator("input[name=reason]").fill("cancel test")
    with page.expect_navigation():
        page.locator("main form button[type=submit]").first.click()
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile(f"Run {SLOW}")).click()
    assert re.search(r"/playbooks/runs/[^/]+$", page.url), page.url
    return page.url.rsplit("/", 1)[1]


def test_an_operator_stops_a_real_run_and_its_processes_are_gone(
    live_server: LiveServer, page: Page
) -> None:
    signed_in(page, live_server, "operator", "otto")
    ident = start_slow_run(page)
    deadline = time.monotonic() + 30
    while not napping():
        assert time.monotonic() < deadline, "the playbook's sleep never started"
        time.sleep(0.1)
    main = page.locator("main")
    expect(main.locator("[data-run-status]")).to_have_attribute("data-run-status", "running")

    button = page.get_by_role("button", name="Stop the run")
    button.click()
    dialog = page.locator("dialog[data-confirm-dialog]")
    expect(dialog).to_contain_text(f"Stop run {ident} ({SLOW} on localhost)?")
    dialog.get_by_role("button", name="Cancel").click()  # the dialog's own "no"
    expect(dialog).to_be_hidden()
    assert napping(), "closing the dialog must stop nothing"

    button.click()
    with page.expect_navigation():
        dialog.get_by_role("button", name="Stop the run").click()
    expect(page.locator(".flash")).to_contain_text(f"Cancel requested: run {ident}")

    # The page polls, then reloads once the run is over: canceled, and by whom.
    status = main.locator("[data-run-status]")
    expect(status).to_have_attribute("data-run-status", "canceled", timeout=STOP_WITHIN)
    expect(main).to_contain_text("canceled by otto")
    expect(main.locator("[data-cancel-requested]")).to_contain_text("Cancel requested by otto")
    expect(page.get_by_role("button", name="Stop the run")).to_have_count(0)
    assert live(ident) == []
    run = find_run(live_server.sessions, ident)
    assert run is not None
    assert (run.status, run.error) == ("canceled", "canceled by otto")


def test_a_viewer_sees_a_running_run_without_a_stop_button(
    live_server: LiveServer, page: Page
) -> None:
    request = RunRequest(action=SLOW, playbook="/x/nap.yml", hosts=("localhost",))
    live_server.recorder.runs.begin(
        request,
        ident="seen-1",
        artifact_dir="",
        trigger="manual",
        requested_by="op",
        at=time.time(),
    )
    signed_in(page, live_server, "viewer", "vera")
    page.goto("/playbooks/runs/seen-1")
    expect(page.locator("main [data-run-status]")).to_have_attribute("data-run-status", "running")
    expect(page.get_by_role("button", name="Stop the run")).to_have_count(0)
