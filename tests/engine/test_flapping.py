"""A flapping host (remediated ``max_remediations`` times within the window, across incidents)
is escalated once, taken out of automatic remediation in the store, and left alone, across
an engine restart too, until a human re-enables it. A real engine, real Ansible runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.loop import Engine
from tests.engine.test_maintenance_engine import Rig


@pytest.fixture
def rig(tmp_path: Path) -> Iterator[Rig]:
    made = Rig(tmp_path)
    yield made
    for engine in made.engines:
        engine.shutdown()
    made.components.close()


def cure_once(rig: Rig, engine: Engine, runs_before: int) -> None:
    """web1 goes high, is remediated once, and recovers."""
    rig.values["web1"] = 95.0
    rig.tick_until(engine, "a run", lambda: len(rig.runs_on("web1")) > runs_before)
    rig.values["web1"] = 10.0
    rig.tick_until(engine, "resolved", lambda: rig.incidents("web1")[0]["status"] == "resolved")


def test_a_flapping_host_is_escalated_and_left_alone_until_re_enabled(rig: Rig) -> None:
    engine = rig.engine()
    cure_once(rig, engine, 0)
    cure_once(rig, engine, 1)
    assert rig.paged("web1") == []

    # The third need within the hour: escalated (one page) and taken out, not run.
    rig.values["web1"] = 95.0
    rig.tick_until(engine, "escalation", lambda: rig.incidents("web1")[0]["status"] == "escalated")
    assert len(rig.runs_on("web1")) == 2
    flapped = rig.decisions("web1")[-1]
    assert (flapped["verdict"], flapped["rule"]) == ("escalate", "flapping")
    assert "remediated automatically 2 times" in flapped["reason"]
    assert [p["reason"] for p in rig.paged("web1")] == [flapped["reason"]]
    holds = rig.recorder.maintenance.holds("web1", ("web",), rig.clock())
    assert holds.disabled_at is not None

    # It recovers, and needs it again: suppressed, recorded once, never run, never paged.
    rig.values["web1"] = 10.0
    rig.tick_until(engine, "closed", lambda: rig.incidents("web1")[0]["closed_at"] is not None)
    rig.values["web1"] = 95.0
    rig.tick(engine, 8)
    assert len(rig.incidents("web1")) == 4
    assert rig.incidents("web1")[0]["status"] == "open"
    assert len(rig.runs_on("web1")) == 2
    suppressed = rig.decisions("web1")[-1]
    assert (suppressed["verdict"], suppressed["rule"]) == ("wait", "flapping")
    assert suppressed["reason"].startswith(
        "suppressed: flapping: taken out of automatic remediation at"
    )
    assert len(rig.paged("web1")) == 1

    # The take-out lives in the store: a restarted engine leaves the host alone too.
    engine.shutdown()
    engine = rig.engine()
    rig.tick(engine, 5)
    assert len(rig.runs_on("web1")) == 2

    # A human re-enables it: the engine acts again, and the audit says who.
    rig.recorder.maintenance.enable("web1", by="alice", at=rig.clock())
    rig.tick_until(engine, "a run after re-enable", lambda: len(rig.runs_on("web1")) == 3, 90)
    audit = rig.recorder.journal.audit.path.read_text().splitlines()
    kinds = [(line["kind"], line["data"].get("by")) for line in map(json.loads, audit)]
    assert ("host_disabled", "engine") in kinds
    assert ("host_enabled", "alice") in kinds
