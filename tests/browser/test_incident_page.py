"""The incident page in Chromium: the timeline's badges and the Ansible output readable in
both themes (text at WCAG AA against its computed background), nothing wider than a phone,
the recap in view, and the page refreshing itself while the incident is open, keeping the
reader's folds, then stopping once it is closed. No console or CSP errors (conftest)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from engine.incident.life import IncidentStatus
from engine.types import (
    HostRunStats,
    Proposal,
    RunRequest,
    RunResult,
    Verdict,
    VerdictKind,
    Verification,
)
from tests.browser.conftest import ACTION, LiveServer, open_page, screenshot, signed_in
from tests.browser.test_freshness import _lum

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
AA = 4.5
STDOUT = {
    "ok": 'ok: [web1] => {\n    "msg": "<script>window.__xss=1</script>"\n}',
    "changed": "changed: [web1]",
    "skipped": "skipping: [web1]",
    "failed": 'fatal: [web1]: FAILED! => {"msg": "boom"}',
}


def _write_artifacts(folder: Path) -> None:
    """One play of four tasks (ok, changed, skipped, failed) and a recap, as runner writes."""
    (folder / "job_events").mkdir(parents=True)
    events: list[dict[str, object]] = [
        {
            "event": "playbook_on_play_start",
            "stdout": "PLAY [hello] ***",
            "event_data": {"play": "hello"},
        },
    ]
    for status, stdout in STDOUT.items():
        kind = {"changed": "ok"}.get(status, status)
        events += [
            {
                "event": "playbook_on_task_start",
                "stdout": "",
                "event_data": {"task": f"{status} task"},
            },
            {
                "event": f"runner_on_{kind}",
                "stdout": stdout,
                "event_data": {
                    "task": f"{status} task",
                    "host": "web1",
                    "res": {"changed": status == "changed"},
                },
            },
        ]
    recap = (
        "PLAY RECAP ***\nweb1 : ok=2 changed=1 unreachable=0 failed=1 skipped=1 rescued=0 ignored=0"
    )
    events.append({"event": "playbook_on_stats", "stdout": recap, "event_data": {}})
    for counter, event in enumerate(events, start=1):
        (folder / "job_events" / f"{counter}-e.json").write_text(
            json.dumps(event | {"counter": counter})
        )


def _seed(server: LiveServer) -> int:
    """An open incident: detected, decided, a run that succeeded without curing the host
    (verified not recovered), then waiting for an approval: every kind of badge."""
    recorder = server.recorder
    t0 = time.time() - 300
    incident = recorder.incidents.open("web1", "high_cpu", 97.5, "CPU 97.5%", at=t0, since=t0)
    execute = Verdict(VerdictKind.EXECUTE, ACTION, "allowed", "allowed")
    decision = recorder.decisions.record(
        incident, "web1", Proposal(ACTION, 0.9, "hot"), execute, t0 + 5
    )
    ident = f"run-{incident}"
    folder = server.settings.runs_dir / ident / "artifacts" / ident
    _write_artifacts(folder)
    request = RunRequest(ACTION, str(server.settings.playbook_dir / "hello.yml"), ("web1",))
    run = recorder.runs.begin(
        request,
        ident=ident,
        artifact_dir=str(folder.parents[1]),
        trigger="engine",
        requested_by="engine",
        at=t0 + 6,
        decisions=[(decision, incident)],
    )
    stats = {"web1": HostRunStats(ok=2, changed=1)}
    recorder.runs.end(run, RunResult(ident, "successful", 0, str(folder), t0 + 6, t0 + 20, stats))
    reason = "CPU 93.0% still above 80%"
    recorder.decisions.verified(decision, Verification("web1", False, 93.0, t0 + 60, reason))
    recorder.incidents.set_status(incident, IncidentStatus.OPEN, t0 + 60, "not_recovered", reason)
    ask = Verdict(VerdictKind.AWAIT_APPROVAL, ACTION, "below auto", "approval")
    asked = recorder.decisions.record(
        incident, "web1", Proposal(ACTION, 0.6, "again?"), ask, t0 + 70
    )
    recorder.approvals.request(
        incident, asked, "web1", ACTION, "again?", at=t0 + 70, expires_at=t0 + 9999
    )
    return incident


def _contrasts(tab: Page, selector: str) -> list[tuple[str, float]]:
    """Each visible match's text and its contrast against its nearest opaque background."""
    pairs = tab.evaluate(
        """(selector) => Array.from(document.querySelectorAll(selector))
            .filter((el) => el.offsetParent !== null)
            .map((el) => {
                const fg = getComputedStyle(el).color;
                let bg = "rgba(0, 0, 0, 0)";
                for (let at = el; at && (bg === "rgba(0, 0, 0, 0)" || bg === "transparent");
                     at = at.parentElement) {
                    bg = getComputedStyle(at).backgroundColor;
                }
                return [el.textContent.trim().slice(0, 40), fg, bg];
            })""",
        selector,
    )
    found = []
    for text, fg, bg in pairs:
        high, low = sorted((_lum(fg), _lum(bg)), reverse=True)
        found.append((text, (high + 0.05) / (low + 0.05)))
    return found


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_incident_page_reads_in_both_themes_on_a_phone(
    browser: Browser, live_server: LiveServer, theme: str
) -> None:
    incident = _seed(live_server)
    with open_page(browser, live_server, color_scheme=theme) as tab:
        tab.set_viewport_size(PHONE)
        signed_in(tab, live_server, "viewer")
        tab.goto(f"/incidents/{incident}")
        assert tab.evaluate("document.documentElement.dataset.theme") == theme
        outcomes = tab.locator(".timeline .event").evaluate_all(
            "(rows) => rows.map((row) => row.dataset.outcome)"
        )
        assert {"detected", "decided", "running", "good", "bad", "attention"} <= set(outcomes)
        tab.locator("[data-ao-expand]").click()  # every line in view, to be measured
        expect(tab.locator("details.ao-task[open]")).to_have_count(4)
        for selector in (".tl-badge", ".ao-badge", ".ao-line", ".ao-count.ao-failed", ".ao-host"):
            measured = _contrasts(tab, selector)
            assert measured, selector
            if selector == ".ao-line":
                assert len(measured) >= 7, measured  # ok (3 lines), changed, skipped, failed, recap
            low = [(text, round(ratio, 2)) for text, ratio in measured if ratio < AA]
            assert not low, f"{theme} {selector} below {AA}: {low}"
        # Every status has its word too, not its colour alone.
        expect(tab.locator(".ao-task .ao-badge")).to_have_text(
            ["ok", "changed", "skipped", "failed"]
        )
        recap = tab.locator("[data-ao-recap]")
        recap.scroll_into_view_if_needed()
        expect(recap).to_be_visible()
        expect(recap).to_contain_text("failed=1")
        assert tab.evaluate("document.querySelector('[data-ao-recap]').closest('.ao-body')") is None
        width = tab.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{theme}: the page is {width} px wide"
        assert tab.evaluate("window.__xss") is None
        screenshot(tab, f"incident-page-{theme}", "verified: not recovered", "PLAY RECAP")


def test_the_open_page_refreshes_keeps_its_folds_then_stops_once_closed(
    browser: Browser, live_server: LiveServer
) -> None:
    incident = _seed(live_server)
    with open_page(browser, live_server) as tab:
        signed_in(tab, live_server, "viewer")
        tab.goto(f"/incidents/{incident}")
        expect(tab.locator("[data-live-source]")).to_have_count(1)
        play = tab.locator("details.ao-play").first
        tab.locator("[data-ao-collapse]").click()  # the reader folds everything away
        expect(play).not_to_have_attribute("open", "")
        tab.evaluate("window.__same_page = true")
        live_server.recorder.handling.acknowledge(incident, by="otto", at=time.time(), note="on it")
        expect(tab.locator(".timeline")).to_contain_text("otto acknowledged", timeout=15_000)
        assert tab.evaluate("window.__same_page") is True  # refreshed in place, not reloaded
        expect(tab.locator("details.ao-play").first).not_to_have_attribute("open", "")
        live_server.recorder.handling.resolve(
            incident, by="otto", at=time.time(), note="fixed by hand"
        )
        expect(tab.locator("[data-live-source]")).to_have_count(0, timeout=15_000)  # reloaded once
        expect(tab.locator("h1")).to_contain_text("resolved")
        assert tab.evaluate("window.__same_page") is None
