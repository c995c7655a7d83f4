"""Trust levels per action and per inventory group (observe, propose, auto).

The gate's part is tested pure; then a real engine loop over a real SQLite store, real
ansible-runner runs and a scripted metrics source shows each level end to end, with the
level in force recorded on every decision row.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml
from flask import g, render_template
from sqlalchemy import select

from autosre.cli import main
from engine.accounts.users import UserInfo
from engine.components import Components
from engine.errors import PolicyError
from engine.loop import Engine
from engine.plan.rules import RulesPlanner
from engine.plan.situation import Situation
from engine.policy.gate import gate
from engine.policy.load import load_policy, parse_policy
from engine.policy.schema import Policy
from engine.policy.trust import TrustLevel, check_groups
from engine.settings import load_settings
from engine.store import open_store
from engine.store.models import Decision
from engine.types import HostHistory, HostState, HostStatus, Proposal, VerdictKind
from tests.fixtures.engine_rig import rig_components
from tests.fixtures.reads import incident_detail, list_approvals, list_incidents, list_runs
from tests.fixtures.scripted import ScriptedSource, SkewClock
from tests.fixtures.store import migrated_sqlite
from webui import create_app

ROOT = Path(__file__).resolve().parents[2]
OK_BOOK = (
    "- name: Succeed\n  hosts: all\n  gather_facts: false\n  tasks:\n"
    "    - name: Say ok\n      ansible.builtin.debug:\n        msg: ok\n"
)
POLICY = """
version: 2
signals:
  high_cpu: {trigger: 80, clear: 50, window: 1s, sustain: 0s, step: 1s, stale_after: 3s,
             ladder: [fix]}
actions:
  fix: {playbook: ok.yml, description: the fix, timeout: 60s}
trust: TRUST
remediation: {cooldown: 1h, max_attempts: 1, verify_timeout: 20s, stage_runs: false}
"""
LOCAL = '{ansible_connection: local, ansible_python_interpreter: "{{ ansible_playbook_python }}"}'
INVENTORY = f"""
all:
  children:
    db:
      hosts:
        db1: {LOCAL}
    web:
      hosts:
        web1: {LOCAL}
"""
HOSTS = ("web1", "db1")


# -- the policy ---------------------------------------------------------------------


def policy_with(trust: object) -> Policy:
    return parse_policy(yaml.safe_load(POLICY.replace("TRUST", "{}")) | {"trust": trust})


def test_an_action_without_a_level_is_propose_and_the_shipped_policies_say_auto() -> None:
    assert policy_with({}).trust.level("fix") is TrustLevel.PROPOSE
    for name in ("default.yaml", "lab.yaml"):
        shipped = load_policy(ROOT / "policies" / name)
        assert {shipped.trust.level(a) for a in shipped.actions} == {TrustLevel.AUTO}, name
    compose = load_policy(ROOT / "deploy" / "compose" / "policy.yaml")
    assert {compose.trust.level(a) for a in compose.actions} == {TrustLevel.AUTO}


@pytest.mark.parametrize(
    ("trust", "field", "words"),
    [
        ({"actions": {"fix": "sometimes"}}, "trust.actions.fix", "observe"),
        ({"actions": {"reboot": "auto"}}, "trust.actions.reboot", "'reboot' is not in actions"),
        ({"groups": {"db": {"reboot": "auto"}}}, "trust.groups.db.reboot", "not in actions"),
        ({"groups": {"db": {"fix": "always"}}}, "trust.groups.db.fix", "observe"),
        ({"groups": {"d b": {"fix": "auto"}}}, "trust.groups", "not an inventory group name"),
        ({"default": "auto"}, "trust.default", "Extra inputs"),
    ],
)
def test_a_bad_trust_section_is_refused_naming_the_field(
    trust: object, field: str, words: str
) -> None:
    with pytest.raises(PolicyError) as caught:
        policy_with(trust)
    assert caught.value.field == field
    assert words in caught.value.reason


def test_a_group_the_inventory_does_not_define_is_refused() -> None:
    policy = policy_with({"groups": {"dbs": {"fix": "observe"}}})
    with pytest.raises(PolicyError, match=r"trust\.groups\.dbs: 'dbs' is not a group"):
        check_groups(policy.trust, {"db", "web"}, source="p.yaml")
    check_groups(policy_with({"groups": {"db": {"fix": "observe"}}}).trust, {"db"}, source="p")


# -- the gate -----------------------------------------------------------------------


def situation(**overrides: object) -> Situation:
    state = HostState("web1", HostStatus.HIGH_CPU, 95.0, 0.0, "high", sample_ts=99.0)
    values: dict[str, object] = {
        "host": "web1",
        "state": state,
        "incident_id": 1,
        "tried": (),
        "history": HostHistory("web1"),
        "fleet": {},
        "actions": {"fix": "the fix"},
        "ladder": ("fix",),
        "now": 100.0,
    }
    return Situation(**(values | overrides))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("level", "confidence", "kind", "rule"),
    [
        ("observe", 1.0, VerdictKind.DO_NOTHING, "trust_observe"),
        ("propose", 1.0, VerdictKind.AWAIT_APPROVAL, "trust_propose"),
        ("propose", float("nan"), VerdictKind.AWAIT_APPROVAL, "trust_propose"),
        ("auto", 0.9, VerdictKind.EXECUTE, "allowed"),
        ("auto", 0.6, VerdictKind.AWAIT_APPROVAL, "approval"),  # the bands still apply
        ("auto", 0.1, VerdictKind.ESCALATE, "confidence"),
    ],
)
def test_the_gate_applies_the_level(
    level: str, confidence: float, kind: VerdictKind, rule: str
) -> None:
    policy = policy_with({"actions": {"fix": level}})
    verdict = gate(Proposal("fix", confidence, "rules say so"), situation(), policy)
    assert (verdict.kind, verdict.rule) == (kind, rule)
    assert verdict.action == (None if kind is VerdictKind.DO_NOTHING else verdict.action)


def test_an_approval_passes_propose_but_never_observe() -> None:
    approved = Proposal("fix", 1.0, "approved by alice: ok", planner="human")
    proposing = policy_with({"actions": {"fix": "propose"}})
    assert gate(approved, situation(), proposing).kind is VerdictKind.EXECUTE
    observing = policy_with({"actions": {"fix": "observe"}})
    assert gate(approved, situation(), observing).rule == "trust_observe"


def test_a_group_override_beats_the_action_level_and_the_most_cautious_group_wins() -> None:
    policy = policy_with(
        {
            "actions": {"fix": "auto"},
            "groups": {"db": {"fix": "observe"}, "web": {"fix": "propose"}, "lab": {"fix": "auto"}},
        }
    )
    proposal = Proposal("fix", 0.9, "rules")
    assert gate(proposal, situation(), policy).rule == "allowed"
    assert gate(proposal, situation(), policy, groups=("web",)).rule == "trust_propose"
    assert gate(proposal, situation(), policy, groups=("web", "db")).rule == "trust_observe"
    # An override may also raise the level: auto in lab, where the action is propose.
    raised = policy_with({"groups": {"lab": {"fix": "auto"}}})
    assert gate(proposal, situation(), raised).rule == "trust_propose"
    assert gate(proposal, situation(), raised, groups=("lab",)).rule == "allowed"


def test_data_holds_whitelist_and_history_come_before_the_level() -> None:
    policy = policy_with({"actions": {"fix": "propose"}})
    stale = HostState("web1", HostStatus.UNKNOWN, None, 0.0, "stale")
    assert gate(Proposal("fix", 1.0, "r"), situation(state=stale), policy).rule == "no_data"
    assert gate(Proposal("reboot", 1.0, "r"), situation(), policy).rule == "whitelist"
    tried = situation(tried=("fix",))
    assert gate(Proposal("fix", 1.0, "r"), tried, policy).rule == "max_attempts"


# -- the engine, end to end -----------------------------------------------------------


class Lab:
    """An engine on a temporary store, playbook and grouped inventory, at one trust section."""

    def __init__(self, tmp_path: Path, trust: str) -> None:
        self.sessions, self.components = rig_components(
            tmp_path, policy=POLICY.replace("TRUST", trust), inventory=INVENTORY, playbook=OK_BOOK
        )
        self.clock = SkewClock()
        self.values: dict[str, float | None] = dict.fromkeys(HOSTS, 20.0)
        source = ScriptedSource(lambda host, _t: self.values[host], HOSTS)
        self.engine = Engine(
            self.components,
            metrics=source,
            planner=RulesPlanner(confidence=1.0),  # as sure as a planner gets
            clock=self.clock,
            plan_wait=10.0,
        )

    def tick_until(self, what: str, done: Callable[[], bool], timeout: float = 40) -> None:
        deadline = time.monotonic() + timeout
        while not done():
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}")
            self.engine.tick()
            self.engine.wait_idle(60)
            self.clock.advance(1.0)

    def decisions(self, host: str) -> list[tuple[str, str, str | None]]:
        with self.sessions() as session:
            rows = session.scalars(select(Decision).where(Decision.host == host)).all()
            return [(row.verdict, row.rule, row.trust) for row in rows]

    def status(self, host: str) -> str | None:
        rows = list_incidents(self.sessions, host=host)
        return rows[0]["status"] if rows else None


@pytest.fixture
def make_lab(tmp_path: Path) -> Iterator[Callable[[str], Lab]]:
    made: list[Lab] = []

    def make(trust: str) -> Lab:
        made.append(Lab(tmp_path, trust))
        return made[-1]

    yield make
    for lab in made:
        lab.engine.shutdown()


def test_observe_records_the_decision_and_never_runs(make_lab: Callable[[str], Lab]) -> None:
    lab = make_lab("{actions: {fix: observe}}")
    lab.values["web1"] = 95.0
    lab.tick_until("a decision", lambda: bool(lab.decisions("web1")))
    for _ in range(5):  # still high: nothing more is recorded, nothing runs
        lab.engine.tick()
        lab.clock.advance(1.0)
    assert lab.engine.wait_idle(5)
    assert lab.decisions("web1") == [("do_nothing", "trust_observe", "observe")]
    assert list_runs(lab.sessions) == []
    assert list_approvals(lab.sessions, status=None) == []
    incident = incident_detail(lab.sessions, list_incidents(lab.sessions)[0]["id"])
    assert incident is not None
    assert incident["decisions"][0]["trust"] == "observe"


def test_propose_asks_a_human_even_at_confidence_one_and_runs_once_approved(
    make_lab: Callable[[str], Lab],
) -> None:
    lab = make_lab("{actions: {fix: propose}}")
    lab.values["web1"] = 95.0
    lab.tick_until("an approval", lambda: bool(list_approvals(lab.sessions)))
    assert lab.status("web1") == "awaiting_approval"
    assert lab.decisions("web1") == [("await_approval", "trust_propose", "propose")]
    assert list_runs(lab.sessions) == []
    (pending,) = list_approvals(lab.sessions)
    lab.components.recorder.approvals.decide(
        pending["id"], approve=True, by="alice", at=lab.clock(), note="go"
    )
    lab.tick_until("the approved run", lambda: bool(list_runs(lab.sessions)))
    assert lab.engine.wait_idle(60)
    assert [(r["action"], r["status"]) for r in list_runs(lab.sessions)] == [("fix", "successful")]
    assert lab.decisions("web1")[-1] == ("execute", "allowed", "propose")


def test_auto_runs_and_a_group_override_holds_its_hosts_back(
    make_lab: Callable[[str], Lab],
) -> None:
    lab = make_lab("{actions: {fix: auto}, groups: {db: {fix: observe}}}")
    lab.values.update(web1=95.0, db1=95.0)
    lab.tick_until(
        "web1 remediated and db1 decided",
        lambda: bool(list_runs(lab.sessions)) and bool(lab.decisions("db1")),
    )
    assert lab.engine.wait_idle(60)
    runs = list_runs(lab.sessions)
    assert [(r["action"], r["hosts"], r["status"]) for r in runs] == [
        ("fix", ["web1"], "successful")
    ]
    assert lab.decisions("web1") == [("execute", "allowed", "auto")]
    assert lab.decisions("db1") == [("do_nothing", "trust_observe", "observe")]


def test_playbook_list_shows_each_level_and_its_group_overrides(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    books = tmp_path / "playbooks"
    books.mkdir()
    (books / "ok.yml").write_text(OK_BOOK)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY.replace("TRUST", "{groups: {db: {fix: observe}}}"))
    monkeypatch.setenv("AUTOSRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUTOSRE_POLICY", str(policy))
    monkeypatch.setenv("AUTOSRE_PLAYBOOK_DIR", str(books))
    assert main(["playbook", "list"]) == 0
    assert "fix  (ok.yml, timeout 60s, trust propose, observe in db)" in capsys.readouterr().out


def test_the_playbooks_page_shows_levels_and_overrides_escaped(tmp_path: Path) -> None:
    """The template's trust column (webui/playbooks.py passes ``trust``: the policy's table)."""
    policy = policy_with({"actions": {"fix": "auto"}, "groups": {"db": {"fix": "observe"}}})
    settings = load_settings({"AUTOSRE_DATA_DIR": str(tmp_path / "data")})
    components = Components(settings, sessions=open_store(migrated_sqlite(tmp_path / "a.db")))
    app = create_app({"TESTING": True, "SECRET_KEY": "k" * 48}, components=components)
    trust = policy.trust.table(policy.actions)
    trust["fix"][1]["<script>x</script>"] = "auto"  # as if a group name got that far
    with app.test_request_context("/playbooks"):
        g.user = UserInfo(1, "vicky", "viewer")  # a viewer: sees the levels, runs nothing
        page = render_template("playbooks/index.html", actions=policy.actions, runs=[], trust=trust)
        unlisted = render_template("playbooks/index.html", actions=policy.actions, runs=[])
    cell = page.split("data-trust>", 1)[1].split("</td>", 1)[0]
    assert '<span class="badge">auto</span>' in cell
    assert "observe in <code>db</code>" in cell
    assert "<script>" not in page and "&lt;script&gt;" in cell
    assert "not shown" in unlisted.split("data-trust>", 1)[1]
