"""Maintenance windows and flapping take-outs: the gate's pure rule, what a window must be,
and the records (both stores, every write audited with who did it)."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest

from engine.errors import MaintenanceError
from engine.inventory import Inventory, InventoryHost
from engine.plan.situation import Situation
from engine.policy.gate import gate
from engine.policy.hold_settings import Flapping
from engine.policy.load import load_policy
from engine.policy.maintenance_request import window_request
from engine.policy.schema import Policy
from engine.record.recorder import Recorder
from engine.types import (
    Attempt,
    HostHistory,
    HostHolds,
    HostState,
    HostStatus,
    MaintenanceWindow,
    Proposal,
    VerdictKind,
)

ROOT = Path(__file__).resolve().parents[2]
NOW = 1_800_000_000.0
HOUR = 3600.0
NO_HOLDS = HostHolds()
INVENTORY = Inventory(
    path=Path("inventory.yml"),
    hosts={
        "web1": InventoryHost("web1", "web1", groups=("web",)),
        "web2": InventoryHost("web2", "web2", groups=("web",)),
        "db1": InventoryHost("db1", "db1", groups=("db",)),
    },
)


@pytest.fixture(scope="module")
def policy() -> Policy:
    base = load_policy(ROOT / "policies" / "lab.yaml", playbook_dir=ROOT / "playbooks")
    flapping = Flapping(max_remediations=3, window=HOUR)
    return base.model_copy(
        update={"remediation": base.remediation.model_copy(update={"flapping": flapping})}
    )


def window(
    *, host: str | None = "web1", group: str | None = None, start: float = -60, end: float = HOUR
) -> MaintenanceWindow:
    return MaintenanceWindow(
        7, host, group, "kernel upgrade", "alice", NOW + start, NOW + end, None, None
    )


def situation(holds: HostHolds = NO_HOLDS, attempts: tuple[Attempt, ...] = ()) -> Situation:
    return Situation(
        host="web1",
        state=HostState("web1", HostStatus.HIGH_CPU, 95.0, NOW - 30, "cpu"),
        incident_id=9,
        tried=(),
        history=HostHistory("web1", attempts),
        fleet={HostStatus.HIGH_CPU: 1},
        actions={"restart_nginx": "restart"},
        ladder=("restart_nginx",),
        now=NOW,
        holds=holds,
    )


def runs(*ages: float) -> tuple[Attempt, ...]:
    """Past remediations of other incidents, each started ``age`` seconds ago (and long over)."""
    return tuple(
        Attempt(i + 1, "restart_nginx", NOW - age, NOW - age + 5, True)
        for i, age in enumerate(ages)
    )


def restart(confidence: float = 0.95) -> Proposal:
    return Proposal("restart_nginx", confidence, "cpu high", planner="test")


# -- maintenance windows in the gate ------------------------------------------------------


def test_an_active_window_suppresses_with_its_reason_and_expiry(policy: Policy) -> None:
    verdict = gate(restart(), situation(HostHolds(windows=(window(),))), policy)
    assert verdict.kind is VerdictKind.WAIT
    assert verdict.rule == "maintenance"
    assert verdict.action is None and verdict.overridden
    assert "maintenance window 7" in verdict.reason
    assert "kernel upgrade" in verdict.reason and "alice" in verdict.reason
    assert "2027-01-15T09:00:00Z" in verdict.reason  # NOW + 1 h
    # Looked at again soon (a window may end early), never later than its expiry.
    assert verdict.retry_at is not None and NOW < verdict.retry_at <= NOW + HOUR


@pytest.mark.parametrize("proposal", ["escalate", "restart_nginx"])
def test_a_window_never_escalates_even_when_the_planner_asks(policy: Policy, proposal: str) -> None:
    tried_twice = runs(100, 200, 300, 400)  # flapping and failure memory would escalate
    verdict = gate(
        Proposal(proposal, 0.99, "page someone"),
        situation(HostHolds(windows=(window(),)), tried_twice),
        policy,
    )
    assert verdict.kind is VerdictKind.WAIT and verdict.rule == "maintenance"


@pytest.mark.parametrize(
    "held",
    [
        window(start=-2 * HOUR, end=-1),  # expired
        window(start=60, end=HOUR),  # not started yet
        MaintenanceWindow(7, "web1", None, "r", "alice", NOW - 60, NOW + HOUR, NOW - 1, "bob"),
    ],
    ids=["expired", "not-yet", "ended-early"],
)
def test_a_window_that_does_not_hold_now_lets_the_action_run(
    policy: Policy, held: MaintenanceWindow
) -> None:
    verdict = gate(restart(), situation(HostHolds(windows=(held,))), policy)
    assert verdict.kind is VerdictKind.EXECUTE


def test_the_window_ending_last_is_named(policy: Policy) -> None:
    short = window(end=600)
    long = MaintenanceWindow(8, None, "web", "rack move", "carol", NOW - 60, NOW + 2 * HOUR)
    verdict = gate(restart(), situation(HostHolds(windows=(short, long))), policy)
    assert "maintenance window 8 on group web" in verdict.reason
    assert "and 1 more" in verdict.reason


def test_no_data_still_comes_first(policy: Policy) -> None:
    blind = HostState("web1", HostStatus.UNKNOWN, None, NOW, "no data")
    sit = replace(situation(HostHolds(windows=(window(),))), state=blind)
    assert gate(restart(), sit, policy).rule == "no_data"


# -- flapping in the gate ---------------------------------------------------------------------


def test_below_the_flapping_threshold_the_action_runs(policy: Policy) -> None:
    verdict = gate(restart(), situation(attempts=runs(600, 1200)), policy)
    assert verdict.kind is VerdictKind.EXECUTE


def test_at_the_threshold_the_host_is_escalated_as_flapping(policy: Policy) -> None:
    verdict = gate(restart(), situation(attempts=runs(600, 1200, 1800)), policy)
    assert verdict.kind is VerdictKind.ESCALATE
    assert verdict.rule == "flapping"
    assert "3 times" in verdict.reason and "taken out of automatic remediation" in verdict.reason


def test_runs_older_than_the_window_do_not_count(policy: Policy) -> None:
    verdict = gate(restart(), situation(attempts=runs(600, 1200, HOUR + 60)), policy)
    assert verdict.kind is VerdictKind.EXECUTE


def test_a_re_enable_starts_the_count_afresh(policy: Policy) -> None:
    holds = HostHolds(enabled_at=NOW - 900)
    verdict = gate(restart(), situation(holds, runs(600, 1200, 1800)), policy)
    assert verdict.kind is VerdictKind.EXECUTE


def test_a_taken_out_host_waits_for_a_human(policy: Policy) -> None:
    holds = HostHolds(disabled_at=NOW - 600, disabled_reason="flapping: 3 runs in 1 h")
    verdict = gate(restart(), situation(holds), policy)
    assert verdict.kind is VerdictKind.WAIT
    assert verdict.rule == "flapping"
    assert verdict.reason.startswith("suppressed: flapping: taken out of automatic remediation at")


# -- what a window must be --------------------------------------------------------------------


def ask(**given: object) -> object:
    args: dict[str, object] = {
        "host": "web1",
        "group": None,
        "reason": "kernel upgrade",
        "now": NOW,
        "max_duration": 7 * 86400.0,
        "duration": 2 * HOUR,
    }
    args.update(given)
    return window_request(INVENTORY, **args)  # type: ignore[arg-type]


def test_a_good_request_is_bounded() -> None:
    made = ask()
    assert made.starts_at == NOW and made.ends_at == NOW + 2 * HOUR  # type: ignore[attr-defined]
    group = ask(host=None, group="web", duration=None, until=NOW + 60)
    assert group.group == "web" and group.host is None  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"host": "web9"}, "unknown host 'web9'"),
        ({"host": None, "group": "nope"}, "unknown group 'nope'"),
        ({"host": None}, "either one host or one group"),
        ({"group": "web"}, "either one host or one group"),
        ({"duration": None}, "needs an end"),
        ({"duration": 60.0, "until": NOW + 60}, "not both"),
        ({"duration": None, "until": NOW - 10}, "must end after it starts"),
        ({"duration": 0.0}, "must end after it starts"),
        ({"starts_at": NOW - 3 * HOUR, "duration": 1.0 * HOUR}, "start in the past"),
        ({"duration": 8 * 86400.0}, "too long"),
        ({"duration": float("inf")}, "too long"),
        ({"starts_at": NOW + 8 * 86400.0}, "too far ahead"),
        ({"reason": "   "}, "needs a reason"),
        ({"reason": "x" * 501}, "too long"),
        ({"reason": "ok\x1b[31mred"}, "control characters"),
        ({"reason": "bell\x07"}, "control characters"),
    ],
)
def test_bad_requests_are_refused_with_the_reason(given: dict[str, object], message: str) -> None:
    with pytest.raises(MaintenanceError, match=message):
        ask(**given)


# -- the records --------------------------------------------------------------------------------


def audit_lines(recorder: Recorder) -> list[dict[str, object]]:
    return [json.loads(line) for line in recorder.journal.audit.path.read_text().splitlines()]


def test_windows_are_recorded_read_back_and_ended_once(recorder: Recorder) -> None:
    records = recorder.maintenance
    host_window = records.start(ask(), by="alice", source="cli", at=NOW)  # type: ignore[arg-type]
    group_window = records.start(
        ask(host=None, group="db", duration=HOUR),
        by="bob",
        source="web",
        at=NOW,  # type: ignore[arg-type]
    )
    web1 = records.holds("web1", ("web",), NOW + 1)
    assert [w.id for w in web1.windows] == [host_window]
    db1 = records.holds("db1", ("db",), NOW + 1)
    assert [(w.id, w.group) for w in db1.windows] == [(group_window, "db")]
    assert records.held(INVENTORY.hosts, NOW + 1) == {"web1", "db1"}
    assert records.holds("web2", ("web",), NOW + 1).windows == ()
    # Expired windows are not read back at all.
    assert records.holds("db1", ("db",), NOW + HOUR + 1).windows == ()

    ended = records.end(host_window, by="carol", at=NOW + 60)
    assert ended.ended_by == "carol" and ended.ended_at == NOW + 60
    assert records.holds("web1", ("web",), NOW + 61).windows == ()
    with pytest.raises(MaintenanceError, match="already ended by carol"):
        records.end(host_window, by="dave", at=NOW + 70)
    with pytest.raises(MaintenanceError, match="already expired"):
        records.end(group_window, by="dave", at=NOW + 2 * HOUR)
    with pytest.raises(MaintenanceError, match="no maintenance window with id 999"):
        records.end(999, by="dave", at=NOW)

    kinds = [(line["kind"], line["data"].get("by")) for line in audit_lines(recorder)]  # type: ignore[union-attr]
    assert kinds == [
        ("maintenance_started", "alice"),
        ("maintenance_started", "bob"),
        ("maintenance_ended", "carol"),
    ]


def test_a_take_out_survives_in_the_store_until_a_human_re_enables(recorder: Recorder) -> None:
    records = recorder.maintenance
    with pytest.raises(MaintenanceError, match="not taken out"):
        records.enable("web1", by="alice", at=NOW)
    records.take_out("web1", "flapping: 3 runs", at=NOW, incident_id=None)
    holds = records.holds("web1", ("web",), NOW + 5)
    assert holds.disabled_at == NOW and "3 runs" in holds.disabled_reason
    assert records.held(INVENTORY.hosts, NOW + 5) == {"web1"}
    assert "taken out of automatic remediation" in records.notes(INVENTORY.hosts, NOW)["web1"]

    records.enable("web1", by="alice", at=NOW + 100)
    holds = records.holds("web1", ("web",), NOW + 101)
    assert holds.disabled_at is None and holds.enabled_at == NOW + 100
    with pytest.raises(MaintenanceError, match="not taken out"):
        records.enable("web1", by="bob", at=NOW + 200)
    lines = audit_lines(recorder)
    assert [line["kind"] for line in lines] == ["host_disabled", "host_enabled"]
    assert "alice re-enabled automatic remediation on web1" in str(lines[1]["message"])
