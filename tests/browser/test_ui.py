"""The web UI in a real browser: sign-in, theme, CSP-clean pages, escaping, live updates,
approvals and a playbook run by hand. A missing page (404) fails its test; every screenshot
also checks what the page shows."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

from engine.incident.life import IncidentStatus
from engine.types import HostRunStats, Proposal, RunRequest, RunResult, Verdict, VerdictKind
from tests.browser.conftest import (
    ACTION,
    PASSWORD,
    LiveServer,
    make_user,
    open_page,
    page_problems,
    screenshot,
    signed_in,
)

pytestmark = pytest.mark.browser

THEME_KEY = "autosre-theme"
SCRIPT_XSS = "<script>window.__xss=1</script>"
ATTR_XSS = '"><img src=x onerror="window.__xss=2">'
RUN_TIMEOUT = 40_000  # ms: a check-mode debug playbook on localhost takes a few seconds


def _luminance(css_color: str) -> float:
    """0 (black) to 1 (white) for an rgb()/rgba() computed colour."""
    found = re.findall(r"[\d.]+", css_color)
    assert len(found) >= 3, css_color
    red, green, blue = (float(v) / 255 for v in found[:3])
    return 0.2126 * red + 0.7152 * green + 0.0722 * blue


def _background(tab: Page) -> float:
    color = tab.evaluate("getComputedStyle(document.body).backgroundColor")
    if color in ("rgba(0, 0, 0, 0)", "transparent"):
        color = tab.evaluate("getComputedStyle(document.documentElement).backgroundColor")
    return _luminance(str(color))


def _assert_clean(tab: Page, what: str) -> None:
    problems = page_problems(tab)
    assert not problems, f"{what}: " + "\n".join(problems)


def _xss_fired(tab: Page) -> object:
    return tab.evaluate("typeof window.__xss === 'undefined' ? null : window.__xss")


# -- sign-in --------------------------------------------------------------------------


def test_login_form_signs_in_and_shows_the_user(live_server: LiveServer, page: Page) -> None:
    user = make_user(live_server, "operator", "otto")
    page.goto("/login")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "login", "Sign in")
    page.locator("input[name=name]").fill(user.name)
    page.locator("input[name=password]").fill(PASSWORD)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert not page.url.endswith("/login")
    header = page.locator("header")
    expect(header.locator(".user-name")).to_have_text("otto")
    expect(header.get_by_role("button", name="Sign out")).to_be_visible()
    screenshot(page, "after-login", "otto", "Sign out")
    _assert_clean(page, "after sign-in")


def test_wrong_password_shows_an_error(live_server: LiveServer, page: Page) -> None:
    make_user(live_server, "viewer", "vera")
    page.goto("/login")
    page.locator("input[name=name]").fill("vera")
    page.locator("input[name=password]").fill("not the password at all")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("Wrong user name or password")
    expect(page.locator("header .user-name")).to_have_count(0)
    expect(page.locator("input[name=name]")).to_have_value("vera")
    screenshot(page, "login-wrong-password", "Wrong user name or password")


def test_sign_out_ends_the_session(live_server: LiveServer, page: Page) -> None:
    signed_in(page, live_server, "viewer")
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    assert page.url.endswith("/login")
    page.goto("/")
    assert "/login" in page.url


# -- theme ----------------------------------------------------------------------------


def test_theme_follows_the_os_and_the_switch_is_remembered(
    browser: Browser, live_server: LiveServer
) -> None:
    with open_page(browser, live_server, color_scheme="dark") as tab:
        tab.goto("/login")
        expect(tab.locator("html")).to_have_attribute("data-theme", "dark")
        assert _background(tab) < 0.3, "dark theme with a light background"
        screenshot(tab, "theme-dark", "Sign in")

        tab.locator("[data-theme-toggle]").click()
        expect(tab.locator("html")).to_have_attribute("data-theme", "light")
        assert tab.evaluate(f"localStorage.getItem('{THEME_KEY}')") == "light"
        tab.reload()
        expect(tab.locator("html")).to_have_attribute("data-theme", "light")
        # Transitions may still run right after load: wait for the colour to settle.
        tab.wait_for_function(
            "() => { const c = getComputedStyle(document.body).backgroundColor;"
            " const [r, g, b] = c.match(/[\\d.]+/g).map(Number);"
            " return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255 > 0.7; }",
            timeout=5_000,
        )
        screenshot(tab, "theme-light", "Sign in")

        tab.locator("[data-theme-toggle]").click()
        expect(tab.locator("html")).to_have_attribute("data-theme", "dark")
        tab.reload()
        expect(tab.locator("html")).to_have_attribute("data-theme", "dark")
        _assert_clean(tab, "theme switching")

    with open_page(browser, live_server, color_scheme="light") as tab:
        tab.goto("/login")
        expect(tab.locator("html")).to_have_attribute("data-theme", "light")
        assert _background(tab) > 0.7, "light theme with a dark background"


def test_theme_is_set_before_the_first_paint(browser: Browser, live_server: LiveServer) -> None:
    # What the page's own first script sees: the attribute already set in <head>.
    with open_page(browser, live_server, color_scheme="dark") as tab:
        tab.add_init_script(
            "document.addEventListener('readystatechange', () => {"
            " if (!window.__firstTheme && document.body)"
            " window.__firstTheme = document.documentElement.getAttribute('data-theme'); });"
        )
        tab.goto("/login")
        assert tab.evaluate("window.__firstTheme") == "dark"


# -- every page: no console errors, no CSP violations -------------------------------


# Every page, and what it shows once the store holds one incident and an admin "ada".
PAGES = {
    "/": "Success rate",
    "/incidents": "web1",
    "/playbooks": ACTION,
    "/approvals": "Pending approvals",
    "/users": "ada",
    "/account": "Your account",
}


def test_pages_have_no_console_errors_or_csp_violations(
    live_server: LiveServer, page: Page
) -> None:
    _seed_incident(live_server)
    signed_in(page, live_server, "admin", "ada")
    for path, shows in PAGES.items():
        response = page.goto(path)
        assert response is not None
        assert response.status == 200, f"{path}: HTTP {response.status}"
        # "load": every sub-resource has loaded or failed. (networkidle would add 0.5 s of
        # quiet per page; what a page reports later still fails the test at teardown.)
        page.wait_for_load_state("load", timeout=5_000)
        _assert_clean(page, path)
        name = "page-" + (path.strip("/").replace("/", "-") or "home")
        screenshot(page, name, shows)


# -- incidents and runs ------------------------------------------------------------------


def _seed_incident(server: LiveServer, host: str = "web1") -> tuple[int, str]:
    """An incident with a full timeline and a finished run whose artifacts hold XSS bait."""
    recorder = server.recorder
    now = time.time() - 600
    incident_id = recorder.incidents.open(
        host, "high_cpu", 97.5, f"CPU 97.5% on {host} for 5m", at=now, since=now - 300
    )
    decision_id = recorder.decisions.record(
        incident_id,
        host,
        Proposal(ACTION, 0.9, "high CPU: greet the host " + SCRIPT_XSS),
        Verdict(VerdictKind.EXECUTE, ACTION, "confident enough " + ATTR_XSS, "auto_execute"),
        now + 1,
    )
    ident = f"20260101T000000-{ACTION}-{incident_id:08x}"
    run_dir = server.settings.runs_dir / ident
    artifacts = run_dir / "artifacts" / ident
    _write_artifacts(artifacts, host)
    request = RunRequest(ACTION, str(server.settings.playbook_dir / "hello.yml"), (host,))
    run_id = recorder.runs.begin(
        request,
        ident=ident,
        artifact_dir=str(run_dir),
        trigger="engine",
        requested_by="engine",
        at=now + 2,
        decisions=[(decision_id, incident_id)],
    )
    recorder.runs.end(
        run_id,
        RunResult(
            ident, "successful", 0, str(artifacts), now + 2, now + 5, {host: HostRunStats(ok=1)}
        ),
    )
    recorder.incidents.set_status(
        incident_id,
        IncidentStatus.RESOLVED,
        now + 60,
        "resolved",
        f"CPU on {host} back to 12.0%",
        value_after=12.0,
        close=True,
    )
    return incident_id, ident


def _write_artifacts(artifacts: Path, host: str) -> None:
    (artifacts / "job_events").mkdir(parents=True)
    task_stdout = f'ok: [{host}] => {{\n    "msg": "{SCRIPT_XSS} {ATTR_XSS}"\n}}'
    events = [
        {"event": "playbook_on_start", "counter": 1, "stdout": "", "event_data": {}},
        {
            "event": "playbook_on_task_start",
            "counter": 2,
            "stdout": f"TASK [{SCRIPT_XSS}] ***",
            "event_data": {"task": SCRIPT_XSS},
        },
        {
            "event": "runner_on_ok",
            "counter": 3,
            "stdout": task_stdout,
            "event_data": {"host": host, "task": SCRIPT_XSS, "res": {"changed": False}},
        },
    ]
    for event in events:
        path = artifacts / "job_events" / f"{event['counter']}-{event['event']}.json"
        path.write_text(json.dumps(event))
    (artifacts / "stdout").write_text(
        f"PLAY [Say hello] ***\n\nTASK [{SCRIPT_XSS}] ***\n{task_stdout}\n\n"
        f"PLAY RECAP ***\n{host} : ok=1 changed=0 unreachable=0 failed=0\n"
    )
    (artifacts / "rc").write_text("0")
    (artifacts / "status").write_text("successful")


def _assert_inert(tab: Page, what: str) -> None:
    """The bait shows as text and nothing in it ran or became an element."""
    assert _xss_fired(tab) is None, f"{what}: injected script ran"
    expect(tab.locator("img[src='x']")).to_have_count(0)
    scripts = tab.evaluate("[...document.scripts].map(s => s.textContent).join('\\n')")
    assert "__xss" not in str(scripts), f"{what}: injected <script> became an element"


def test_incident_page_shows_the_timeline_and_escapes_output(
    live_server: LiveServer, page: Page
) -> None:
    live_server.require("/incidents/1")
    incident_id, ident = _seed_incident(live_server)
    signed_in(page, live_server, "viewer")
    page.goto(f"/incidents/{incident_id}")
    body = page.locator("main")
    expect(body).to_contain_text("CPU 97.5% on web1 for 5m")  # detected
    expect(body).to_contain_text("CPU on web1 back to 12.0%")  # resolved
    expect(body).to_contain_text(ACTION)
    _assert_inert(page, "incident page")
    screenshot(page, "incident-detail", "CPU 97.5% on web1 for 5m")
    _assert_clean(page, "incident page")

    live_server.require(f"/playbooks/runs/{ident}")
    page.goto(f"/playbooks/runs/{ident}")
    main = page.locator("main")
    expect(main).to_contain_text("PLAY RECAP")
    expect(main).to_contain_text(SCRIPT_XSS)
    expect(main).to_contain_text("onerror=")
    _assert_inert(page, "run page")
    screenshot(page, "run-detail-escaped", "PLAY RECAP", SCRIPT_XSS)
    _assert_clean(page, "run page")


def test_incident_page_shows_the_run_output(live_server: LiveServer, page: Page) -> None:
    live_server.require("/incidents/1")
    incident_id, _ = _seed_incident(live_server)
    signed_in(page, live_server, "viewer")
    page.goto(f"/incidents/{incident_id}")
    text = page.locator("main").inner_text()
    _assert_inert(page, "incident page")
    assert "PLAY RECAP" in text, "the incident page does not show the run's Ansible output"
    assert SCRIPT_XSS in text


def test_incident_list_links_to_the_incident(live_server: LiveServer, page: Page) -> None:
    live_server.require("/incidents")
    incident_id, _ = _seed_incident(live_server, host="web7")
    signed_in(page, live_server, "viewer")
    page.goto("/incidents")
    expect(page.locator("main")).to_contain_text("web7")
    link = page.locator(f"main a[href$='/incidents/{incident_id}']").first
    with page.expect_navigation():
        link.click()
    assert page.url.endswith(f"/incidents/{incident_id}")
    screenshot(page, "incidents-list-followed", f"Incident {incident_id} on web7")


# -- dashboard ----------------------------------------------------------------------------


def test_dashboard_fragments_update_without_reload(live_server: LiveServer, page: Page) -> None:
    signed_in(page, live_server, "viewer")
    page.clock.install()  # the poll timers run on demand, not in real time
    page.goto("/")
    pollers = page.locator("[data-poll-url]")
    assert pollers.count() > 0, "the dashboard (/) has no live fragments ([data-poll-url])"
    screenshot(page, "dashboard", "Hosts")
    page.evaluate("window.__sameDocument = true")
    every = max(
        float(pollers.nth(i).get_attribute("data-poll-every") or 10) for i in range(pollers.count())
    )
    host = "fresh-host-42"
    assert host not in (page.locator("main").text_content() or "")
    page.evaluate(
        "window.__updates = 0;"
        " document.addEventListener('autosre:updated', () => { window.__updates += 1; })"
    )
    live_server.recorder.incidents.open(
        host, "high_cpu", 99.0, f"CPU 99.0% on {host}", at=time.time(), since=time.time() - 60
    )
    page.clock.fast_forward(int(every * 1000) + 500)  # every poller fires once
    page.wait_for_function("() => window.__updates > 0", timeout=10_000)
    expect(page.locator("[data-poll-url]").filter(has_text=host).first).to_be_visible(
        timeout=10_000
    )
    assert page.evaluate("window.__sameDocument") is True, "the page reloaded"
    screenshot(page, "dashboard-updated", host)
    _assert_clean(page, "dashboard")


# -- approvals ----------------------------------------------------------------------------


def test_operator_approves_a_pending_action(live_server: LiveServer, page: Page) -> None:
    live_server.require("/approvals")
    recorder = live_server.recorder
    now = time.time()
    incident_id = recorder.incidents.open(
        "web3", "high_cpu", 91.0, "CPU 91.0% on web3 for 5m", at=now - 60, since=now - 360
    )
    decision_id = recorder.decisions.record(
        incident_id,
        "web3",
        Proposal(ACTION, 0.6, "moderately sure"),
        Verdict(VerdictKind.AWAIT_APPROVAL, ACTION, "needs a human", "approval"),
        now - 30,
    )
    approval_id = recorder.approvals.request(
        incident_id,
        decision_id,
        "web3",
        ACTION,
        "moderately sure",
        at=now - 30,
        expires_at=now + 3600,
    )
    signed_in(page, live_server, "operator", "olga")
    page.on("dialog", lambda dialog: dialog.accept())
    page.goto("/approvals")
    main = page.locator("main")
    expect(main).to_contain_text("web3")
    screenshot(page, "approvals-pending", "Pending approvals", "web3")
    row = page.locator("tr, li, article, .card, form").filter(has_text="web3")
    button = row.get_by_role("button", name=re.compile(r"^\s*approve", re.IGNORECASE)).first
    with page.expect_navigation():
        button.click()
    expect(page.locator("main")).to_contain_text(re.compile("approved", re.IGNORECASE))
    decided = recorder.memory.approvals([approval_id])[approval_id]
    assert decided.status == "approved"
    assert decided.decided_by == "olga"
    screenshot(page, "approvals-approved", re.compile("approved", re.IGNORECASE))
    _assert_clean(page, "approvals")


# -- playbooks ----------------------------------------------------------------------------


def test_run_a_playbook_by_hand_in_check_mode(live_server: LiveServer, page: Page) -> None:
    live_server.require("/playbooks")
    signed_in(page, live_server, "operator", "otto")
    page.goto("/playbooks")
    expect(page.locator("main")).to_contain_text(ACTION)
    screenshot(page, "playbooks", "Playbooks", ACTION)
    live_server.require(f"/playbooks/{ACTION}/run")
    page.goto(f"/playbooks/{ACTION}/run")
    page.locator("input[name=hosts][value=localhost]").check()
    page.locator("input[name=check]").check()
    page.locator("input[name=reason]").fill("browser test")
    screenshot(page, "playbook-run-form", f"Run {ACTION}", "Hosts")
    with page.expect_navigation():
        page.locator("main form button[type=submit]").first.click()
    expect(page.locator("main")).to_contain_text("check mode")
    screenshot(page, "playbook-run-confirm", "Confirm the run", "check mode")
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile(f"Run {ACTION}")).click()
    assert re.search(r"/playbooks/runs/[^/]+$", page.url), page.url
    expect(page.locator("main")).to_contain_text("successful", timeout=RUN_TIMEOUT)
    expect(page.locator("main")).to_contain_text("hello from the browser test")
    screenshot(page, "playbook-run-finished", "successful", "hello from the browser test")
    ident = page.url.rsplit("/", 1)[1]
    with live_server.sessions() as session:
        from engine.store.models import PlaybookRun

        run = session.query(PlaybookRun).filter_by(ident=ident).one()
        assert (run.status, run.check_mode, run.requested_by) == ("successful", True, "otto")
    _assert_clean(page, "playbook run")


def test_restart_nginx_by_hand_in_check_mode(
    live_server: LiveServer, page: Page, nginx_service: Any
) -> None:
    """The real restart_nginx playbook, by hand in check mode: recorded, nginx untouched."""
    old_pid = nginx_service.pid()
    signed_in(page, live_server, "operator", "olga")
    page.goto("/playbooks/restart_nginx/run")
    page.locator("input[name=hosts][value=localhost]").check()
    page.locator("input[name=check]").check()
    page.locator("input[name=reason]").fill("browser test")
    with page.expect_navigation():
        page.locator("main form button[type=submit]").first.click()
    expect(page.locator("main")).to_contain_text("check mode")
    with page.expect_navigation():
        page.get_by_role("button", name=re.compile("Run restart_nginx")).click()
    expect(page.locator("main")).to_contain_text("successful", timeout=RUN_TIMEOUT)
    expect(page.locator("main")).to_contain_text("Restart nginx")
    screenshot(page, "restart-nginx-check-mode", "successful", "Restart nginx")
    assert nginx_service.pid() == old_pid, "check mode must not restart nginx"
    _assert_clean(page, "restart_nginx check mode")


def test_incident_made_by_a_real_engine_run(live_server: LiveServer, page: Page) -> None:
    """A real engine tick opens the incident and runs Ansible; the page shows all of it."""
    from engine.components import Components
    from engine.loop import Engine
    from engine.plan.rules import RulesPlanner
    from tests.fixtures.scripted import ScriptedSource, SkewClock

    settings = live_server.settings
    values = {"localhost": 96.0}
    clock = SkewClock()  # the engine's waits (settle, verification) pass without sleeping
    engine = Engine(
        Components(settings, sessions=live_server.sessions),
        metrics=ScriptedSource(lambda host, _t: values[host], ("localhost",)),
        planner=RulesPlanner(),
        clock=clock,
    )
    try:
        engine.tick()
        assert engine.wait_idle(60)
        values["localhost"] = 8.0
        for _ in range(30):
            clock.advance(1.0)
            engine.tick()
            if not live_server.recorder.memory.active_incidents():
                break
    finally:
        engine.shutdown()
    from tests.fixtures.reads import list_incidents

    (incident,) = list_incidents(live_server.sessions)
    assert incident["status"] == "resolved"
    signed_in(page, live_server, "viewer", "vicky")
    page.goto(f"/incidents/{incident['id']}")
    main = page.locator("main")
    for text in ("detected", "rules", ACTION, "resolved", "hello from the browser test"):
        expect(main).to_contain_text(text)
    screenshot(page, "incident-from-engine-run", "resolved", ACTION)
    _assert_clean(page, "incident from an engine run")
