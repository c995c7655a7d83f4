"""Dead ends in a real browser: from an approval to its incident, from a run to its incident,
and Reject asks in a dialog (confirm.js) before anything is rejected."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect
from sqlalchemy import select

from engine.store.models import ApprovalRow
from engine.types import Verdict, VerdictKind
from tests.browser.conftest import LiveServer, screenshot, signed_in
from tests.webui.seed import approval_story

pytestmark = pytest.mark.browser

ASK = Verdict(VerdictKind.AWAIT_APPROVAL, "restart_nginx", "confidence below 0.8", "approval")
EXECUTE = Verdict(VerdictKind.EXECUTE, "restart_nginx", "approved", "approval")


def story(server: LiveServer) -> tuple[int, int, int, int]:
    """(incident of the run, run id, pending incident, pending approval); the run stays
    "running" (never ended): its page polls, as for a live run."""
    told = approval_story(server.recorder, pending_for=3600)
    return told.incident, told.run, told.waiting_incident, told.waiting_approval


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
