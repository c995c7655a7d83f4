"""The AWX executor against a fake controller (tests/fixtures/fake_awx.py): each job's end
stored like a local run, cancellation and timeouts reaching the controller, the token
kept out of everything written, and unsafe templates refused."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
import yaml

from autosre.cli import main
from engine.components import Components
from engine.errors import PolicyError
from engine.execute.awx import AwxExecutor
from engine.execute.awx_client import AwxClient
from engine.execute.host_outcomes import HostEnd
from engine.execute.results import read_events
from engine.settings import load_settings
from engine.types import HostRunStats, RunRequest, RunResult
from tests.fixtures.fake_awx import FakeAwx, Template
from tests.fixtures.store import migrated_sqlite

ROOT = Path(__file__).resolve().parents[2]
SECRET = "hunter2-very-secret"


def executor(fake: FakeAwx, runs: Path, *, token: str | None = None) -> AwxExecutor:
    client = AwxClient(fake.url, token or fake.token, timeout=2.0)
    templates: dict[str, int | str] = {
        "restart_nginx": "Restart nginx",
        "break_things": 2,
        "run_forever": 3,
        "stop_by_hand": 4,
        "no_limit": 5,
        "no_vars": 6,
    }
    return AwxExecutor(
        client, templates=templates, runs_dir=runs, poll_interval=0.05, cancel_grace=2.0
    )


@pytest.fixture
def awx(fake_awx: FakeAwx) -> FakeAwx:
    fake_awx.add_template(1, Template("Restart nginx"))
    fake_awx.add_template(2, Template("Break things", outcome="failed"))
    fake_awx.add_template(3, Template("Run forever", outcome="endless"))
    fake_awx.add_template(4, Template("Stopped by a person", outcome="canceled"))
    fake_awx.add_template(5, Template("No limit prompt", ask_limit=False))
    fake_awx.add_template(6, Template("No vars prompt", ask_variables=False))
    return fake_awx


def request(action: str, *hosts: str, timeout: int = 30, check: bool = False) -> RunRequest:
    return RunRequest(
        action=action,
        playbook="/nowhere/restart_nginx.yml",
        hosts=hosts or ("web1", "web2"),
        extra_vars={"service": "nginx", "api_password": SECRET},
        secret_vars=frozenset({"api_password"}),
        timeout=timeout,
        check=check,
    )


def artifacts(result: RunResult) -> Path:
    return Path(result.artifact_dir)


def written(root: Path) -> str:
    """Every file under root, as one text (to grep for secrets)."""
    return "\n".join(
        p.read_text(encoding="utf-8", errors="replace") for p in root.rglob("*") if p.is_file()
    )


def test_successful_job_is_stored_like_a_local_run(awx: FakeAwx, tmp_path: Path) -> None:
    result = executor(awx, tmp_path / "runs").run(request("restart_nginx"), ident="r1")

    assert (result.status, result.rc, result.error) == ("successful", 0, None)
    assert result.stats == {
        "web1": HostRunStats(ok=1, changed=1),
        "web2": HostRunStats(ok=1, changed=1),
    }
    assert result.host_succeeded("web1") and result.host_succeeded("web2")
    # The template was found by name, launched with the hosts and the validated vars.
    (job,) = awx.launched()
    assert job.template.name == "Restart nginx"
    assert job.limit == "web1,web2"
    assert job.extra_vars == {"service": "nginx", "api_password": SECRET}
    folder = artifacts(result)
    assert folder == tmp_path / "runs" / "r1" / "artifacts" / "r1"
    events = read_events(folder)
    assert [e["counter"] for e in events] == list(range(1, len(events) + 1))
    assert len(events) == 5  # three pages of two: "next" was followed
    oks = [e for e in events if e["event"] == "runner_on_ok"]
    assert [e["event_data"]["host"] for e in oks] == ["web1", "web2"]
    recap = events[-1]
    assert recap["event"] == "playbook_on_stats"
    assert recap["event_data"]["ok"] == {"web1": 1, "web2": 1}
    assert "changed: [web2]" in (folder / "stdout").read_text()
    assert (folder / "status").read_text() == "successful"
    assert (folder / "rc").read_text() == "0"
    record = json.loads((folder / "awx_job").read_text())
    assert record == {"job": 1, "template": 1, "url": f"{awx.url}/api/v2/jobs/1/"}
    # The playbook printed its vars: the secret one is hidden in every file.
    assert SECRET not in written(tmp_path / "runs")
    assert "nginx" in (folder / "stdout").read_text()
    pages = [r for r in awx.requests if r.path.endswith("/job_events/") and "page" in r.query]
    assert pages, "the second page of events was asked for"


def test_failed_job_reports_each_host_and_unreachable_early(awx: FakeAwx, tmp_path: Path) -> None:
    heard: list[tuple[HostEnd, str]] = []

    def on_unreachable(end: HostEnd) -> None:
        heard.append((end, awx.jobs[1].status))

    result = executor(awx, tmp_path / "runs").run(
        request("break_things", "web1", "web2", "web3"), ident="r2", on_unreachable=on_unreachable
    )

    assert (result.status, result.rc) == ("failed", 2)
    assert result.stats["web1"].failures == 1
    assert result.unreachable("web2")
    assert result.host_succeeded("web3")  # the others' recaps still tell the truth
    assert not result.host_succeeded("web1")
    assert [(end.host, end.outcome) for end, _ in heard] == [("web2", "unreachable")]
    assert heard[0][1] == "running", "told while the job still ran, not at its end"
    assert "configuration file test failed" in result.host_errors["web1"]
    assert "Failed to connect" in result.host_errors["web2"]
    assert (artifacts(result) / "status").read_text() == "failed"
    kinds = [e["event"] for e in read_events(artifacts(result))]
    assert "runner_on_failed" in kinds and "runner_on_unreachable" in kinds


def test_job_canceled_on_the_controller(awx: FakeAwx, tmp_path: Path) -> None:
    result = executor(awx, tmp_path / "runs").run(request("stop_by_hand"), ident="r3")

    assert result.status == "canceled"
    assert result.rc not in (0, None)
    assert result.error is not None and "canceled on the controller" in result.error
    assert awx.cancels(1) == 0  # nobody here asked for it
    assert not result.host_succeeded("web1")


def test_timeout_cancels_the_job(awx: FakeAwx, tmp_path: Path) -> None:
    began = time.monotonic()
    result = executor(awx, tmp_path / "runs").run(request("run_forever", timeout=1), ident="r4")
    took = time.monotonic() - began

    assert result.status == "timeout"
    assert result.rc not in (0, None)
    assert awx.cancels(1) == 1
    assert awx.jobs[1].status == "canceled"
    assert 1.0 <= took < 5.0
    assert (artifacts(result) / "status").read_text() == "timeout"
    assert read_events(artifacts(result)), "what ran before the timeout is kept"


def test_cancel_event_cancels_the_job(awx: FakeAwx, tmp_path: Path) -> None:
    cancel = threading.Event()
    timer = threading.Timer(0.3, cancel.set)
    timer.start()
    try:
        began = time.monotonic()
        result = executor(awx, tmp_path / "runs").run(
            request("run_forever", timeout=60), ident="r5", cancel=cancel
        )
    finally:
        timer.cancel()
    assert result.status == "canceled"
    assert awx.cancels(1) == 1
    assert awx.jobs[1].status == "canceled"
    assert time.monotonic() - began < 5.0


def test_cancel_before_start_launches_nothing(awx: FakeAwx, tmp_path: Path) -> None:
    cancel = threading.Event()
    cancel.set()
    result = executor(awx, tmp_path / "runs").run(
        request("restart_nginx"), ident="r6", cancel=cancel
    )
    assert result.status == "canceled"
    assert awx.launched() == []


def test_token_appears_in_no_artifact_and_no_error(awx: FakeAwx, tmp_path: Path) -> None:
    awx.leak_token = True  # the controller echoes it in events and stdout
    runs = tmp_path / "runs"
    results = [
        executor(awx, runs).run(request("restart_nginx"), ident="t1"),
        executor(awx, runs).run(request("break_things"), ident="t2"),
        executor(awx, runs).run(request("no_limit"), ident="t3"),
    ]
    awx.broken = (500, json.dumps({"detail": f"db down, your token was {awx.token}"}))
    results.append(executor(awx, runs).run(request("restart_nginx"), ident="t4"))

    assert results[0].status == "successful"
    assert "Bearer" in written(runs), "the leak reached the files (and was redacted)"
    assert awx.token not in written(runs)
    for result in results:
        assert awx.token not in repr(result)
    assert results[3].status == "error" and "HTTP 500" in (results[3].error or "")
    assert awx.token not in repr(AwxClient(awx.url, awx.token))


def test_template_ignoring_the_limit_is_refused_and_its_job_canceled(
    awx: FakeAwx, tmp_path: Path
) -> None:
    result = executor(awx, tmp_path / "runs").run(request("no_limit"), ident="u1")

    assert result.status == "error"
    assert result.error is not None
    assert "5" in result.error and "limit" in result.error and "job 1 canceled" in result.error
    assert awx.cancels(1) == 1
    assert awx.jobs[1].status == "canceled"
    assert not result.host_succeeded("web1")


def test_template_ignoring_the_vars_is_refused(awx: FakeAwx, tmp_path: Path) -> None:
    result = executor(awx, tmp_path / "runs").run(request("no_vars"), ident="u2")

    assert result.status == "error"
    assert "'api_password'" in (result.error or "") and "'service'" in (result.error or "")
    assert SECRET not in (result.error or "")
    assert awx.cancels(1) == 1


def test_check_run_on_a_template_that_would_run_for_real_is_refused(
    awx: FakeAwx, tmp_path: Path
) -> None:
    awx.templates[1].ask_job_type = False
    result = executor(awx, tmp_path / "runs").run(request("restart_nginx", check=True), ident="u3")
    assert result.status == "error" and "job_type" in (result.error or "")
    assert awx.cancels(1) == 1


def test_action_without_template_is_not_launched(awx: FakeAwx, tmp_path: Path) -> None:
    result = executor(awx, tmp_path / "runs").run(request("clean_disk"), ident="u4")
    assert result.status == "error"
    assert "'clean_disk' has no awx_job_template" in (result.error or "")
    assert awx.requests == []


def test_wrong_token_is_a_clear_error(awx: FakeAwx, tmp_path: Path) -> None:
    result = executor(awx, tmp_path / "runs", token="wrong-token-123456").run(
        request("restart_nginx"), ident="e1"
    )
    assert result.status == "error"
    assert result.error is not None
    assert "refused the token" in result.error and "401" in result.error
    assert "\n" not in result.error and "Traceback" not in result.error
    assert "wrong-token-123456" not in result.error
    assert awx.launched() == []


def test_dead_controller_is_a_clear_error(tmp_path: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    client = AwxClient(f"http://127.0.0.1:{port}", "tok-abcdef123456", timeout=2.0)
    runner = AwxExecutor(client, templates={"restart_nginx": 1}, runs_dir=tmp_path / "runs")
    began = time.monotonic()
    result = runner.run(request("restart_nginx"), ident="e2")
    assert result.status == "error"
    assert result.error is not None and "cannot reach AWX" in result.error
    assert time.monotonic() - began < 3.0


def test_a_short_controller_outage_is_ridden_out(awx: FakeAwx, tmp_path: Path) -> None:
    awx.templates[1].polls = 8
    outage = threading.Timer(0.1, lambda: setattr(awx, "broken", (503, "{}")))
    back = threading.Timer(0.4, lambda: setattr(awx, "broken", None))
    outage.start()
    back.start()
    try:
        result = executor(awx, tmp_path / "runs").run(request("restart_nginx"), ident="o1")
    finally:
        outage.cancel()
        back.cancel()
    assert (result.status, result.error) == ("successful", None)
    assert any(r.path == "/api/v2/jobs/1/" for r in awx.requests[-20:])
    assert result.host_succeeded("web1")


def test_controller_lost_past_the_timeout_is_an_error(awx: FakeAwx, tmp_path: Path) -> None:
    outage = threading.Timer(0.2, lambda: setattr(awx, "broken", (503, "{}")))
    outage.start()
    began = time.monotonic()
    try:
        result = executor(awx, tmp_path / "runs").run(request("run_forever", timeout=1), ident="o2")
    finally:
        outage.cancel()
    assert result.status == "error"
    assert result.error is not None
    assert "not confirmed" in result.error and "HTTP 503" in result.error
    assert awx.cancels(1) >= 1  # it was asked, though the controller could not answer
    assert time.monotonic() - began < 6.0


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, "not json at all", "malformed answer"),
        (200, "[1, 2]", "malformed answer"),
        (302, "", "redirect"),
        (404, "{}", "HTTP 404"),
        (503, '{"detail": "maintenance"}', "HTTP 503: maintenance"),
    ],
)
def test_bad_answers_are_clear_errors(
    awx: FakeAwx, tmp_path: Path, status: int, body: str, expected: str
) -> None:
    awx.broken = (status, body)
    result = executor(awx, tmp_path / "runs").run(request("break_things"), ident="e3")
    assert result.status == "error"
    assert result.error is not None and expected in result.error
    assert "\n" not in result.error


# -- configuration -----------------------------------------------------------------


def awx_env(tmp_path: Path, fake: FakeAwx, policy: Path) -> dict[str, str]:
    migrated_sqlite(tmp_path / "data" / "autosre.db")
    return {
        "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
        "AUTOSRE_POLICY": str(policy),
        "AUTOSRE_INVENTORY": str(ROOT / "inventory" / "lab.yml"),
        "AUTOSRE_EXECUTOR": "awx",
        "AUTOSRE_AWX_URL": fake.url,
        "AUTOSRE_AWX_TOKEN": fake.token,
    }


def test_components_build_the_awx_executor_from_the_policy(
    fake_awx: FakeAwx, tmp_path: Path
) -> None:
    policy = yaml.safe_load((ROOT / "policies" / "lab.yaml").read_text())
    for number, action in enumerate(policy["actions"].values(), start=1):
        action["awx_job_template"] = number
    path = tmp_path / "awx.yaml"
    path.write_text(yaml.safe_dump(policy))
    components = Components(load_settings(awx_env(tmp_path, fake_awx, path)))
    try:
        assert isinstance(components.load().executor, AwxExecutor)
    finally:
        components.close()
    assert fake_awx.token in components.settings.secrets
    assert fake_awx.token not in repr(components.settings)


def test_action_without_template_is_refused_at_start(
    fake_awx: FakeAwx,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = awx_env(tmp_path, fake_awx, ROOT / "policies" / "lab.yaml")
    components = Components(load_settings(env))
    try:
        with pytest.raises(PolicyError, match=r"actions\.\w+\.awx_job_template: must be set"):
            components.load()
    finally:
        components.close()
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert main(["run", "--once"]) == 2
    err = capsys.readouterr().err
    assert "awx_job_template" in err and "Traceback" not in err
    assert fake_awx.requests == []


@pytest.mark.parametrize("value", [0, -3, True, "", "  ", "bad\nname"])
def test_bad_template_reference_is_refused(tmp_path: Path, value: object) -> None:
    from engine.policy.load import load_policy

    policy = yaml.safe_load((ROOT / "policies" / "lab.yaml").read_text())
    name = next(iter(policy["actions"]))
    policy["actions"][name]["awx_job_template"] = value
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(policy))
    with pytest.raises(PolicyError, match=f"actions.{name}.awx_job_template"):
        load_policy(path, playbook_dir=ROOT / "playbooks")


# -- after a crash: the job went on without the engine ------------------------------------


def _launched_before_the_crash(awx: FakeAwx, runs: Path, ident: str, template: int) -> int:
    """A job launched by an engine that then died: on the controller, and named in the
    run's artifacts as the executor names it."""
    client = AwxClient(awx.url, awx.token, timeout=2.0)
    job_id = int(client.launch(template, {"limit": "web1,web2"})["job"])
    artifact_dir = runs / ident / "artifacts" / ident
    artifact_dir.mkdir(parents=True)
    (artifact_dir / "awx_job").write_text(json.dumps({"job": job_id, "template": template}))
    return job_id


def test_a_job_that_outlived_its_engine_is_followed_to_its_real_result(
    awx: FakeAwx, tmp_path: Path
) -> None:
    runs = tmp_path / "runs"
    _launched_before_the_crash(awx, runs, "r20", 1)
    result = executor(awx, runs).resume("r20", started_at=time.time(), wait=10)
    assert result is not None and result.status == "successful"
    assert result.host_succeeded("web1") and result.host_succeeded("web2")
    assert result.error is not None and "went on while the engine was down" in result.error
    assert read_events(artifacts(result)), "its events are stored like a local run's"
    assert (artifacts(result) / "status").read_text() == "successful"


def test_a_job_still_running_after_the_wait_is_canceled(awx: FakeAwx, tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    job_id = _launched_before_the_crash(awx, runs, "r21", 3)
    result = executor(awx, runs).resume("r21", started_at=time.time(), wait=0.5)
    assert result is not None and result.status == "canceled"
    assert awx.cancels(job_id) == 1 and awx.jobs[job_id].status == "canceled"
    assert result.error is not None and "still running 0.5s after: canceled" in result.error


def test_a_run_that_never_launched_a_job_has_nothing_to_resume(
    awx: FakeAwx, tmp_path: Path
) -> None:
    assert executor(awx, tmp_path / "runs").resume("r22", started_at=0.0, wait=1) is None
    assert awx.launched() == []
