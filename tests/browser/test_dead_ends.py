"""Dead ends in a real browser: from an approval to its incident, from a run to its incident,
and Reject asks in a dialog (confirm.js) before anything is rejected."""

from __future__ import annotations

import re
import time

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from engine.store.models import ApprovalRow
from engine.types import Proposal, RunRequest, Verdict, VerdictKind
from tests.browser.conftest import LiveServer, screenshot, signed_in

pytestmark = pytest.mark.browser

ASK = Verdict(VerdictKind.AWAIT_APPROVAL, "restart_nginx", "confidence below 0.8", "approval")
EXECUTE = Verdict(VerdictKind.EXECUTE, "restart_nginx", "approved", "approval")


def story(server: LiveServer) -> tuple[int, int, int, int]:
    """A run made of an approval on one incident; an approval pending on another.
    Returns (incident of the run, run id, pending incident, pending approval)."""
    recorder, now = server.recorder, time.time()
    # The run stays "running" (never ended): its page polls, as for a live run.
    model = Proposal("restart_nginx", 0.62, "nginx workers are busy", "gemini")
    ran = recorder.incidents.open("web1", "high_cpu", 97.0, "hot", at=now - 300, since=now)
    asked = recorder.decisions.record(ran, "web1", model, ASK, now - 290)
    approval = recorder.approvals.request(
        ran, asked, "web1", "restart_nginx", "busy", at=now - 290, expires_at=now + 3600
    )
    recorder.approvals.decide(approval, approve=True, by="otto", at=now - 200)
    human = Proposal("restart_nginx", 1.0, "approved by otto", planner="human")
    decided = recorder.decisions.record(ran, "web1", human, EXECUTE, now - 190)
    run = recorder.runs.begin(
        RunRequest("restart_nginx", "/p/restart_nginx.yml", ("web1",)),
        ident="r-approved",
        artifact_dir="/nowhere",
        trigger="engine",
        requested_by="engine",
        at=now - 190,
        decisions=[(decided, ran)],
    )
    waiting = recorder.incidents.open("web2", "high_cpu", 96.0, "hot", at=now - 60, since=now)
    ask = recorder.decisions.record(waiting, "web2", model, ASK, now - 50)
    pending = recorder.approvals.request(
        waiting, ask, "web2", "restart_nginx", "busy", at=now - 50, expires_at=now + 3600
    )
    return ran, run, waiting, pending


def status(server: LiveServer, approval_id: int) -> str:
    with server.sessions() as session:
        return str(session.scalar(select(ApprovalRow.status).where(ApprovalRow.id == approval_id)))


def test_links_lead_to_the_incident_and_reject_asks_first(
    page: Page, live_server: LiveServer
) -> None:
    ran, run, waiting, pending = story(live_server)
    signed_in(page, live_server, "operator")

    page.goto("/approvals")
    row = page.locator(f"#approval-{pending}")
    expect(row).to_contain_text("62%")
    expect(row).to_contain_text("min left")
    with page.expect_navigation():
        row.get_by_role("link", name=f"incident {waiting}").click()
    assert page.url.endswith(f"/incidents/{waiting}"), page.url

    page.goto("/playbooks/runs/r-approved")
    with page.expect_navigation():
        page.get_by_role("link", name=f"incident {ran}").click()
    assert page.url.endswith(f"/incidents/{ran}#run-{run}"), page.url

    page.goto("/approvals")
    row = page.locator(f"#approval-{pending}")
    row.get_by_role("button", name="Reject").click()
    dialog = page.locator("dialog[data-confirm-dialog]")
    expect(dialog).to_be_visible()
    expect(dialog).to_contain_text(f"Reject restart_nginx on web2 (incident {waiting})?")
    screenshot(page, "dead-ends-reject-dialog", "The action will not run.")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    assert status(live_server, pending) == "pending"  # cancelled: nothing happened

    row.get_by_role("button", name="Reject").click()
    with page.expect_navigation():
        dialog.get_by_role("button", name="Reject").click()
    expect(page.locator(".flash")).to_contain_text(re.compile(r"Rejected restart_nginx on web2"))
    assert status(live_server, pending) == "rejected"
