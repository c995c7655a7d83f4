"""A full artifacts disk (a small tmpfs of the test's own under the data dir): runs are
refused before anything is recorded, the incident escalates naming the disk, /healthz
says so, a run by hand is refused, and once space is freed runs go again."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import RefusedError
from engine.execute.by_hand import run_by_hand
from tests.engine.test_loop import Lab
from tests.fixtures.reads import incident_detail, list_runs
from tests.fixtures.tmpfs import tmpfs
from webui import create_app

MIB = 1024 * 1024


def test_a_full_artifacts_disk_refuses_runs_before_recording_them(tmp_path: Path) -> None:
    with tmpfs(tmp_path / "data", "120m") as data:
        filler = data / "filler"
        filler.write_bytes(b"\0" * (100 * MIB))  # 20 MiB left, under the 100 MiB default
        lab = Lab(tmp_path)
        engine = lab.engine()
        try:
            lab.values["web1"] = 97.0
            lab.tick_until(engine, "web1 to escalate", lambda: lab.status("web1") == "failed")
            assert list_runs(lab.sessions) == [], "a run was recorded on a full disk"
            (incident,) = lab.incidents("web1")
            detail = incident_detail(lab.sessions, incident["id"])
            assert detail is not None
            assert "the artifacts disk is full" in detail["summary"], detail["summary"]
            assert "MiB free under" in detail["summary"]

            app = create_app({"TESTING": True}, components=lab.components)
            health = app.test_client().get("/healthz").get_json()
            assert health["disk"]["status"] == "full" and health["status"] == "degraded"

            with pytest.raises(RefusedError, match="artifacts disk is full"):
                run_by_hand(
                    lab.components,
                    action="first_fix",
                    hosts=["web2"],
                    extra_vars={},
                    check=False,
                    requested_by="otto",
                )
            assert list_runs(lab.sessions) == []

            filler.unlink()  # space freed: the next incident's run goes
            assert app.test_client().get("/healthz").get_json()["disk"]["status"] == "ok"
            lab.values["web2"] = 97.0
            lab.tick_until(engine, "a run on web2", lambda: bool(list_runs(lab.sessions)))
            (run,) = list_runs(lab.sessions)
            assert (run["hosts"], run["status"]) == (["web2"], "successful")
        finally:
            engine.shutdown()
            lab.components.close()
