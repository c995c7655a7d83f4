"""Rate limits (issue 14): the policy section refused when wrong, the count's arithmetic, and a
real engine over a real store and real Ansible runs: a limit hit escalates naming itself,
holds across an engine restart, and runs by hand and the engine's count toward each other."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.orm import Session, sessionmaker

from autosre.cli import main
from engine.accounts.users import create_user
from engine.errors import PolicyError, RefusedError
from engine.execute.by_hand import run_by_hand
from engine.loop import Engine
from engine.plan.rules import RulesPlanner
from engine.policy.load import parse_policy
from engine.policy.rate_limit_schema import RateLimit
from engine.policy.rate_limits import Accepted, RunMark, first_hit
from engine.read.run_counts import run_marks
from engine.record.recorder import Recorder
from engine.types import RunRequest
from tests.fixtures.engine_rig import Pager, rig_components
from tests.fixtures.reads import incident_detail, list_approvals, list_incidents, list_runs
from tests.fixtures.scripted import ScriptedSource, SkewClock
from tests.webui.conftest import CSRF_META, PASSWORD, TEST_CONFIG
from webui import create_app

OK_PLAYBOOK = (
    "- name: Succeed\n  hosts: all\n  gather_facts: false\n  tasks:\n"
    "    - name: Say ok\n      ansible.builtin.debug:\n        msg: ok\n"
)
POLICY = """
version: 2
signals:
  high_cpu: {trigger: 80, clear: 50, window: 1s, sustain: 0s, step: 1s, stale_after: 3s,
             ladder: [fix, fix_again]}
actions:
  fix: {playbook: ok.yml, description: the fix, timeout: 60s}
  fix_again: {playbook: ok.yml, description: the fix again, timeout: 60s}
trust:
  actions: {fix: auto, fix_again: auto}
remediation:
  cooldown: 0s
  max_attempts: 2
  verify_timeout: 20s
  flapping: {max_remediations: 20, window: 1h}
"""
LOCAL = '{ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}'
INVENTORY = f"all:\n  hosts:\n    web1: {LOCAL}\n    web2: {LOCAL}\n"
HOSTS = ("web1", "web2")
HOUR = 3600.0


def policy_data(limits: list[dict[str, Any]]) -> dict[str, Any]:
    data = yaml.safe_load(POLICY)
    data["rate_limits"] = limits
    assert isinstance(data, dict)
    return data


# -- the policy section -----------------------------------------------------------


@pytest.mark.parametrize(
    ("entry", "field", "says"),
    [
        ({"scope": "rack", "max": 1, "per": "1h"}, "rate_limits.1.scope", "'host', 'action'"),
        (
            {"scope": "host", "action": "fixx", "max": 1, "per": "1h"},
            "rate_limits",
            "entry 1: unknown action 'fixx' (not in actions)",
        ),
        ({"scope": "host", "max": 0, "per": "1h"}, "rate_limits.1.max", "greater than or equal"),
        ({"scope": "host", "max": 1, "per": "1 hour"}, "rate_limits.1.per", "duration"),
        ({"scope": "host", "max": 1, "per": "40d"}, "rate_limits.1.per", "less than or equal"),
        ({"scope": "action", "max": 1, "per": "1h"}, "rate_limits.1", "needs the action"),
        ({"scope": "fleet", "action": "fix", "max": 1, "per": "1h"}, "rate_limits.1", "fleet"),
        ({"scope": "host", "max": 1, "per": "1h", "burst": 2}, "rate_limits.1.burst", "Extra"),
        ({"scope": "host", "action": "fix", "max": 9, "per": "60m"}, "rate_limits", "entry 0"),
        # Hostile or sloppy values: never read as something else.
        ({"scope": "host", "max": True, "per": "1h"}, "rate_limits.1.max", "valid integer"),
        ({"scope": "host", "max": "3", "per": "1h"}, "rate_limits.1.max", "valid integer"),
        ({"scope": "host", "max": 10**30, "per": "1h"}, "rate_limits.1.max", "less than"),
        ({"scope": "host", "max": 1, "per": "nan"}, "rate_limits.1.per", "duration"),
        ({"scope": "host", "max": 1, "per": 0}, "rate_limits.1.per", "greater than or equal"),
        ({"scope": "HOST", "max": 1, "per": "1h"}, "rate_limits.1.scope", "'host'"),
        (  # shown escaped: a newline never reaches a terminal raw
            {"scope": "host", "action": "fix\n", "max": 1, "per": "1h"},
            "rate_limits",
            "entry 1: unknown action 'fix\\n'",
        ),
        ({"scope": "host", "action": ["fix"], "max": 1, "per": "1h"}, "rate_limits.1.action", ""),
    ],
)
def test_bad_entries_are_refused_naming_the_entry(
    entry: dict[str, Any], field: str, says: str
) -> None:
    data = policy_data([{"scope": "host", "action": "fix", "max": 3, "per": "1h"}, entry])
    data["rate_limits"].append({"scope": "fleet", "max": 5, "per": "10m"})  # a good one after
    with pytest.raises(PolicyError) as caught:
        parse_policy(data, source="p.yaml")
    assert f"p.yaml: {field}: " in str(caught.value)
    assert says in str(caught.value)


def test_autosre_policy_check_exits_2_naming_the_bad_entry(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        POLICY + "rate_limits:\n  - {scope: host, max: 3, per: 1h}\n"
        "  - {scope: action, action: restart_everything, max: 3, per: 1h}\n"
    )
    try:
        code = main(["policy", "check", str(bad)])
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == 2
    assert f"{bad}: rate_limits: entry 1: unknown action 'restart_everything'" in err
    assert "Traceback" not in err


def test_a_policy_without_limits_limits_nothing() -> None:
    assert parse_policy(policy_data([])).rate_limits == ()
    marks = [RunMark(0.0, "fix", "web1")] * 50
    assert first_hit((), marks, action="fix", hosts=["web1"], now=1) is None


# -- the count --------------------------------------------------------------------


def limit(scope: str, action: str | None, most: int, per: float) -> RateLimit:
    return RateLimit(scope=scope, action=action, max=most, per=per)  # type: ignore[arg-type]


NOON = datetime(2026, 1, 1, 12, tzinfo=UTC).timestamp()


def test_a_host_limit_counts_that_host_and_action_in_the_window_only() -> None:
    limits = [limit("host", "fix", 3, HOUR)]
    marks = [
        RunMark(NOON - HOUR, "fix", "web1"),  # just out of the window (t - per, t]
        RunMark(NOON - 3000, "fix", "web1"),
        RunMark(NOON - 2000, "fix", "web1"),
        RunMark(NOON - 10, "fix_again", "web1"),  # another action
        RunMark(NOON - 10, "fix", "web2"),  # another host
    ]
    assert first_hit(limits, marks, action="fix", hosts=["web1"], now=NOON) is None
    marks.append(RunMark(NOON - 1000, "fix", "web1"))
    hit = first_hit(limits, marks, action="fix", hosts=["web2", "web1"], now=NOON)
    assert hit is not None and hit.host == "web1"
    assert hit.reason == "rate limit: fix on web1, 3 per 1h, reached (3 runs since 11:10 UTC)"
    assert first_hit(limits, marks, action="fix_again", hosts=["web1"], now=NOON) is None


def test_action_and_fleet_limits_count_every_host_a_run_touches() -> None:
    marks = [RunMark(NOON - 60, "fix", host) for host in ("a", "b", "c")]  # one batched run
    action = [limit("action", "fix", 5, 600)]
    assert first_hit(action, marks, action="fix", hosts=["d", "e"], now=NOON) is None
    hit = first_hit(action, marks, action="fix", hosts=["d", "e", "f"], now=NOON)
    assert hit is not None and hit.reason == (
        "rate limit: fix on all hosts, 5 per 10m, would be exceeded "
        "(3 runs since 11:59 UTC; this run adds 3)"
    )
    fleet = [limit("fleet", None, 3, 86400)]
    hit = first_hit(fleet, marks, action="fix_again", hosts=["z"], now=NOON + 13 * HOUR)
    assert hit is not None
    assert hit.reason == (
        "rate limit: every action on the fleet, 3 per 1d, reached (3 runs since Jan 01 11:59 UTC)"
    )
    alone = first_hit(fleet, [], action="fix", hosts=["a", "b", "c", "d"], now=NOON)
    assert alone is not None and alone.reason.endswith(
        "would be exceeded (0 runs; this run adds 4)"
    )


def test_runs_accepted_this_tick_count_until_the_store_shows_them() -> None:
    limits = [limit("fleet", None, 2, HOUR)]
    accepted = Accepted()
    stored = [RunMark(NOON - 100, "fix", "web9", engine=True)]
    assert (
        first_hit(limits, accepted.merged(stored, NOON), action="fix", hosts=["web1"], now=NOON)
        is None
    )
    accepted.add("fix", ["web1"], stored, NOON)
    # Same tick, not launched yet: the last slot is taken.
    assert first_hit(limits, accepted.merged(stored, NOON), action="fix", hosts=["web2"], now=NOON)
    # Launched: the store shows it, and it is not counted twice.
    launched = [*stored, RunMark(NOON, "fix", "web1", engine=True)]
    assert len(accepted.merged(launched, NOON)) == 2
    # A new tick forgets what the last one accepted (recorded, or never launched).
    assert accepted.merged(stored, NOON + 1) == stored


# -- a real engine ------------------------------------------------------------------


class Rig:
    """Engines over one temporary store, with the test's policy and two local hosts."""

    def __init__(self, tmp_path: Path, limits: str, policy: str = POLICY) -> None:
        self.sessions, self.components = rig_components(
            tmp_path,
            policy=policy + "rate_limits:\n" + limits,
            inventory=INVENTORY,
            playbook=OK_PLAYBOOK,
        )
        self.clock = SkewClock()
        self.values: dict[str, float | None] = dict.fromkeys(HOSTS, 20.0)
        self.pager = Pager()
        self.engines: list[Engine] = []

    def engine(self) -> Engine:
        made = Engine(
            self.components,
            metrics=ScriptedSource(lambda host, _t: self.values[host], HOSTS),
            planner=RulesPlanner(),
            notifier=self.pager,
            clock=self.clock,
            plan_wait=10.0,
        )
        assert made.decider.run_marks is not None  # the engine counts the store's runs
        self.engines.append(made)
        return made

    def by_hand(self, host: str, *, check: bool = False) -> str:
        result = run_by_hand(
            self.components,
            action="fix",
            hosts=[host],
            extra_vars={},
            check=check,
            requested_by="olga",
            clock=self.clock,
        )
        return result.status

    def tick_until(self, engine: Engine, what: str, done: Callable[[], bool]) -> None:
        deadline = time.monotonic() + 60
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            engine.tick()
            engine.wait_idle(60)
            self.clock.advance(1.0)

    def incident(self, host: str) -> dict[str, Any]:
        return list_incidents(self.sessions, host=host)[0]

    def runs_on(self, host: str) -> list[dict[str, Any]]:
        return [r for r in list_runs(self.sessions) if host in r["hosts"]]

    def last_decision(self, host: str) -> dict[str, Any]:
        detail = incident_detail(self.sessions, self.incident(host)["id"])
        assert detail is not None
        decisions: list[dict[str, Any]] = detail["decisions"]
        return decisions[-1]

    def cure(self, engine: Engine, host: str) -> None:
        """The host goes high, is remediated, and recovers."""
        before = len(self.runs_on(host))
        self.values[host] = 95.0
        self.tick_until(engine, "a run", lambda: len(self.runs_on(host)) > before)
        self.values[host] = 10.0
        self.tick_until(engine, "resolved", lambda: self.incident(host)["status"] == "resolved")


def make_rig(tmp_path: Path, limits: str, policy: str = POLICY) -> Iterator[Rig]:
    rig = Rig(tmp_path, limits, policy)
    yield rig
    for engine in rig.engines:
        engine.shutdown()
    rig.components.close()


@pytest.fixture
def host_rig(tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(tmp_path, "  - {scope: host, action: fix, max: 2, per: 1h}\n")


def test_a_host_limit_holds_across_hand_runs_and_an_engine_restart(host_rig: Rig) -> None:
    rig = host_rig
    assert rig.by_hand("web1", check=True) == "successful"  # check mode: never counts
    assert rig.by_hand("web1") == "successful"  # by hand: counts toward the engine's limit
    engine = rig.engine()
    rig.cure(engine, "web1")  # the second run of the hour

    # The third need within the hour: escalated naming the limit, paged, never run.
    rig.values["web1"] = 95.0
    rig.tick_until(engine, "escalation", lambda: rig.incident("web1")["status"] == "escalated")
    assert len(rig.runs_on("web1")) == 3  # the check-mode run, the hand run, the engine's
    decided = rig.last_decision("web1")
    assert (decided["verdict"], decided["rule"]) == ("escalate", "rate_limit")
    assert decided["reason"].startswith("rate limit: fix on web1, 2 per 1h, reached (2 runs since")
    assert [p["reason"] for p in rig.pager.pages] == [decided["reason"]]

    # The engine's runs count toward a hand run's limit too: refused, naming it, not run.
    with pytest.raises(RefusedError, match=r"fix: rate limit: fix on web1, 2 per 1h, reached"):
        rig.by_hand("web1")
    assert len(rig.runs_on("web1")) == 3

    # Another host is not limited by web1's runs.
    rig.cure(engine, "web2")

    # A new engine over the same store still refuses: the counts live in the store.
    engine.shutdown()
    engine = rig.engine()
    rig.values["web1"] = 10.0
    rig.tick_until(engine, "closed", lambda: rig.incident("web1")["closed_at"] is not None)
    rig.values["web1"] = 95.0
    rig.tick_until(engine, "escalation", lambda: rig.incident("web1")["status"] == "escalated")
    assert rig.last_decision("web1")["rule"] == "rate_limit"
    assert len(rig.runs_on("web1")) == 3

    # An hour after the first counted run, a slot frees up again.
    rig.clock.advance(HOUR)
    assert rig.by_hand("web1") == "successful"


@pytest.fixture
def fleet_rig(tmp_path: Path) -> Iterator[Rig]:
    yield from make_rig(tmp_path, "  - {scope: fleet, max: 1, per: 10m}\n")


def test_two_hosts_decided_in_one_tick_never_both_take_the_last_slot(fleet_rig: Rig) -> None:
    rig = fleet_rig
    engine = rig.engine()
    rig.values.update(web1=95.0, web2=95.0)

    def escalated() -> list[str]:
        found = [list_incidents(rig.sessions, host=h) for h in HOSTS]
        return [
            h
            for h, incidents in zip(HOSTS, found, strict=True)
            if incidents and incidents[0]["status"] == "escalated"
        ]

    rig.tick_until(
        engine, "a run and an escalation", lambda: bool(list_runs(rig.sessions) and escalated())
    )
    runs = list_runs(rig.sessions)
    # Batched, both would be one run on two hosts: a host-run each, two in all.
    assert [len(run["hosts"]) for run in runs] == [1], "one slot in 10 minutes: one host-run"
    (limited,) = escalated()
    assert limited not in runs[0]["hosts"]
    decided = rig.last_decision(limited)
    assert decided["rule"] == "rate_limit"
    assert decided["reason"].startswith("rate limit: every action on the fleet, 1 per 10m, reached")


def test_autosre_playbook_run_refused_by_a_limit_exits_2_naming_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = Rig(tmp_path, "  - {scope: action, action: fix, max: 3, per: 1h}\n")
    rig.components.close()
    monkeypatch.setenv("AUTOSRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUTOSRE_DATABASE_URL", f"sqlite:///{tmp_path / 'autosre.db'}")
    monkeypatch.setenv("AUTOSRE_POLICY", str(tmp_path / "policy.yaml"))
    monkeypatch.setenv("AUTOSRE_INVENTORY", str(tmp_path / "inventory.yml"))
    monkeypatch.setenv("AUTOSRE_PLAYBOOK_DIR", str(tmp_path / "playbooks"))
    monkeypatch.delenv("AUTOSRE_PROMETHEUS_URL", raising=False)

    def cli(*argv: str) -> tuple[int, str]:
        try:
            code = main(["playbook", "run", "fix", "--reason", "test", *argv])
        except SystemExit as exc:
            code = int(exc.code or 0)
        return code, capsys.readouterr().err

    assert cli("--limit", "web1,web2")[0] == 0  # two host-runs of fix
    code, err = cli("--limit", "web1,web2")  # two more would make four in the hour
    assert code == 2
    assert "fix: rate limit: fix on all hosts, 3 per 1h, would be exceeded" in err
    assert "(2 runs since" in err and "this run adds 2)" in err
    assert "Traceback" not in err
    assert cli("--limit", "web2", "--check")[0] == 0  # check mode is never limited
    assert cli("--limit", "web2")[0] == 0  # the third and last of the hour
    code, err = cli("--limit", "web1")
    assert code == 2 and "fix on all hosts, 3 per 1h, reached (3 runs since" in err
    assert len(list_runs(rig.sessions)) == 3  # the refused runs were never recorded
    rig.sessions.kw["bind"].dispose()


def test_the_store_counts_every_run_once_per_host_but_check_and_unreleased_staged_runs(
    recorder: Recorder, sessions: sessionmaker[Session]
) -> None:
    """On SQLite and PostgreSQL: one query, a mark per host, times and triggers kept."""
    now = time.time()

    def begin(action: str, hosts: tuple[str, ...], at: float, **how: Any) -> int:
        check = bool(how.pop("check", False))
        request = RunRequest(action, "/p/ok.yml", hosts, check=check)
        return recorder.runs.begin(
            request, ident=f"run-{action}-{at}-{check}", artifact_dir="/x", at=at, **how
        )

    begin("fix", ("web1", "web2"), now - 30, trigger="engine", requested_by="engine")
    begin("fix", ("web1",), now - 20, trigger="manual", requested_by="olga")
    begin("fix", ("web1",), now - 10, trigger="manual", requested_by="olga", check=True)
    begin("fix", ("web2",), now - 7200, trigger="manual", requested_by="olga")  # too old
    staged = recorder.staged.stage(
        RunRequest("fix", "/p/ok.yml", ("web2",)), ident="run-staged", artifact_dir="/x", at=now
    )
    marks = sorted(run_marks(sessions, since=now - 3600), key=lambda m: (m.at, m.host))
    assert [(m.action, m.host, m.engine) for m in marks] == [
        ("fix", "web1", True),
        ("fix", "web2", True),
        ("fix", "web1", False),
    ]
    assert abs(marks[0].at - (now - 30)) < 0.01
    recorder.staged.release(staged, action="fix", at=now, decisions=())
    assert len(run_marks(sessions, since=now - 3600)) == 4  # released: it acts, it counts


def test_the_web_form_refuses_a_run_over_a_limit_with_400_naming_it(host_rig: Rig) -> None:
    rig = host_rig
    assert rig.by_hand("web1") == rig.by_hand("web1") == "successful"
    app = create_app(TEST_CONFIG, components=rig.components)
    create_user(rig.sessions, "otto", PASSWORD, "operator")
    client = app.test_client()

    def token() -> str:
        found = CSRF_META.search(client.get("/account", follow_redirects=True).text)
        assert found
        return found.group(1)

    signed = client.post(
        "/login", data={"name": "otto", "password": PASSWORD, "csrf_token": token()}
    )
    assert signed.status_code == 302
    fields = {"csrf_token": token(), "hosts": ["web1"], "reason": "again", "confirm": "yes"}
    refused = client.post("/playbooks/fix/run", data=fields)
    assert refused.status_code == 400
    assert "fix: rate limit: fix on web1, 2 per 1h, reached (2 runs since" in refused.text
    assert len(rig.runs_on("web1")) == 2  # nothing recorded, nothing ran
    # Check mode is never limited: a dry run still starts.
    dry = client.post("/playbooks/fix/run", data={**fields, "check": "1"})
    assert dry.status_code == 302
    deadline = time.monotonic() + 60  # let it end before the store closes
    while any(run["status"] == "running" for run in rig.runs_on("web1")):
        assert time.monotonic() < deadline, "the dry run did not end"
        time.sleep(0.1)


@pytest.fixture
def propose_rig(tmp_path: Path) -> Iterator[Rig]:
    policy = POLICY.replace("{fix: auto, fix_again: auto}", "{fix: propose, fix_again: propose}")
    yield from make_rig(tmp_path, "  - {scope: host, action: fix, max: 2, per: 1h}\n", policy)


def test_an_approved_run_is_counted_again_when_approved_and_no_human_is_asked_in_vain(
    propose_rig: Rig,
) -> None:
    rig = propose_rig
    assert rig.by_hand("web1") == "successful"  # 1 of 2
    engine = rig.engine()
    rig.values["web1"] = 95.0
    rig.tick_until(engine, "approval", lambda: bool(list_approvals(rig.sessions)))
    (approval,) = list_approvals(rig.sessions)
    assert rig.by_hand("web1") == "successful"  # 2 of 2, while the approval waits
    rig.components.recorder.approvals.decide(
        approval["id"], approve=True, by="alice", at=rig.clock()
    )
    rig.tick_until(engine, "escalation", lambda: rig.incident("web1")["status"] == "escalated")
    assert len(rig.runs_on("web1")) == 2, "approved, but over the limit: never run"
    decided = rig.last_decision("web1")
    assert (decided["planner"], decided["rule"]) == ("human", "rate_limit")
    assert decided["reason"].startswith("rate limit: fix on web1, 2 per 1h, reached (2 runs")

    # Needed again while the limit still holds: escalated at once, nobody asked to approve.
    rig.values["web1"] = 10.0
    rig.tick_until(engine, "closed", lambda: rig.incident("web1")["closed_at"] is not None)
    rig.values["web1"] = 95.0
    rig.tick_until(engine, "escalation", lambda: rig.incident("web1")["status"] == "escalated")
    assert len(list_approvals(rig.sessions, status=None)) == 1
    assert rig.last_decision("web1")["rule"] == "rate_limit"
