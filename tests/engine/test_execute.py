"""The ansible-runner executor, with real tiny playbooks run against localhost."""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import psutil
import pytest
import yaml
from hypothesis import example, given
from hypothesis import strategies as st

from engine.execute.results import read_events
from engine.execute.runner import AnsibleRunnerExecutor
from engine.execute.vars_file import vars_yaml
from engine.redact import REDACTED, Redactor, encodings
from engine.types import RunRequest, RunResult
from tests.fixtures.ansible import local_inventory

HOST = "localhost"
TEST_PLAYBOOKS = Path(__file__).resolve().parents[1] / "playbooks"
SLEEP_TASK = "    - ansible.builtin.command: sleep {seconds}\n      changed_when: false\n"


@pytest.fixture
def executor(tmp_path: Path) -> AnsibleRunnerExecutor:
    inventory = local_inventory(tmp_path / "inventory.yml", HOST, "other-host")
    # A killed module leaves its payload dir in TMPDIR: keep those in tmp_path.
    return AnsibleRunnerExecutor(
        runs_dir=tmp_path / "runs", inventory_path=inventory, envvars={"TMPDIR": str(tmp_path)}
    )


def playbook(tmp_path: Path, tasks: str) -> str:
    path = tmp_path / "play.yml"
    path.write_text(f"- hosts: all\n  gather_facts: false\n  tasks:\n{tasks}")
    return str(path)


def request(path: str, **kwargs: object) -> RunRequest:
    return RunRequest(action="test", playbook=path, hosts=(HOST,), **kwargs)  # type: ignore[arg-type]


def sleepers(seconds: str, wait: float = 2.0) -> list[psutil.Process]:
    """Live `sleep <seconds>` processes still there after a short bounded wait."""
    deadline = time.monotonic() + wait
    while True:
        found = [
            proc
            for proc in psutil.process_iter(["cmdline", "status"])
            if (proc.info["cmdline"] or [])[:2] == ["sleep", seconds]
            and proc.info["status"] != psutil.STATUS_ZOMBIE
        ]
        if not found or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def test_successful_run_reports_stats_and_artifacts(
    executor: AnsibleRunnerExecutor, tmp_path: Path
) -> None:
    path = playbook(tmp_path, "    - ansible.builtin.debug:\n        msg: hi\n")

    result = executor.run(request(path), ident="ok-1")

    assert (result.status, result.rc, result.error) == ("successful", 0, None)
    assert result.host_succeeded(HOST)
    assert result.stats[HOST].ok == 1
    assert "other-host" not in result.stats  # --limit kept the run to the requested host
    assert result.started_at <= result.ended_at
    artifacts = Path(result.artifact_dir)
    assert artifacts == tmp_path / "runs" / "ok-1" / "artifacts" / "ok-1"
    for name in ("command", "stdout", "status", "rc"):
        assert (artifacts / name).is_file()
    counters = [event["counter"] for event in read_events(artifacts)]
    assert counters == sorted(counters) and len(counters) >= 4
    assert read_events(artifacts)[-1]["event"] == "playbook_on_stats"


def test_failing_task_is_a_failed_run(executor: AnsibleRunnerExecutor, tmp_path: Path) -> None:
    path = playbook(tmp_path, "    - ansible.builtin.fail:\n        msg: boom\n")

    result = executor.run(request(path), ident="fail-1")

    assert result.status == "failed"
    assert result.rc not in (None, 0)
    assert result.stats[HOST].failures == 1
    assert not result.host_succeeded(HOST)


def test_timeout_stops_the_run(executor: AnsibleRunnerExecutor, tmp_path: Path) -> None:
    path = playbook(tmp_path, SLEEP_TASK.format(seconds="41.7"))

    started = time.monotonic()
    result = executor.run(request(path, timeout=2), ident="timeout-1")

    assert result.status == "timeout"
    assert 2 <= time.monotonic() - started < 15
    assert not sleepers("41.7")  # the playbook's process group was killed


def test_cancel_event_stops_the_run(executor: AnsibleRunnerExecutor, tmp_path: Path) -> None:
    path = playbook(tmp_path, SLEEP_TASK.format(seconds="42.3"))
    cancel = threading.Event()
    timer = threading.Timer(1.0, cancel.set)

    started = time.monotonic()
    timer.start()
    try:
        result = executor.run(request(path), ident="cancel-1", cancel=cancel)
    finally:
        timer.cancel()

    assert result.status == "canceled"
    assert time.monotonic() - started < 15
    assert not sleepers("42.3")


def test_secret_values_never_reach_the_run_dir(
    executor: AnsibleRunnerExecutor, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "tok-SECRET/xyz-9731"
    # runner copies the process environment into the `command` artifact
    monkeypatch.setenv("AUTOSRE_TEST_API_KEY", "env-secret-5519")
    out = tmp_path / "greeting.txt"
    path = playbook(
        tmp_path,
        "    - ansible.builtin.debug:\n        msg: 'token is {{ api_token }}'\n"
        f"    - ansible.builtin.copy:\n        dest: {out}\n"
        "        content: '{{ greeting }}'\n        mode: '0600'\n",
    )
    extra = {"greeting": "hello-public-42", "api_token": secret}

    result = executor.run(
        request(path, extra_vars=extra, secret_vars=frozenset({"api_token"})), ident="secret-1"
    )

    assert result.status == "successful", result
    assert out.read_text() == "hello-public-42"  # the non-secret var was used
    run_dir = tmp_path / "runs" / "secret-1"
    files = [p for p in run_dir.rglob("*") if p.is_file()]
    assert files
    for file in files:
        content = file.read_bytes()
        assert secret.encode() not in content, file
        assert b"env-secret-5519" not in content, file
    assert not (run_dir / "env" / "extravars").exists()
    assert f"token is {REDACTED}" in (Path(result.artifact_dir) / "stdout").read_text()
    command = json.loads((Path(result.artifact_dir) / "command").read_text())["command"]
    vars_file = Path(command[command.index("-e") + 1].removeprefix("@"))
    assert not vars_file.exists()  # the 0600 vars file is gone after the run
    assert run_dir not in vars_file.parents


def test_check_mode_passes_check_flag(executor: AnsibleRunnerExecutor, tmp_path: Path) -> None:
    path = playbook(
        tmp_path,
        "    - ansible.builtin.assert:\n        that: ansible_check_mode\n",
    )

    result = executor.run(request(path, check=True), ident="check-1")

    assert result.status == "successful", result


@pytest.mark.parametrize(
    ("ident", "hosts", "message"),
    [("../escape", (HOST,), "invalid run ident"), ("no-hosts", (), "no hosts")],
)
def test_invalid_requests_are_errors_not_runs(
    executor: AnsibleRunnerExecutor,
    tmp_path: Path,
    ident: str,
    hosts: tuple[str, ...],
    message: str,
) -> None:
    path = playbook(tmp_path, "    - ansible.builtin.debug:\n        msg: hi\n")
    bad = RunRequest(action="test", playbook=path, hosts=hosts)

    result = executor.run(bad, ident=ident)

    assert result.status == "error"
    assert message in (result.error or "")
    assert not (tmp_path / "runs").exists()


def test_reused_ident_is_an_error(executor: AnsibleRunnerExecutor, tmp_path: Path) -> None:
    path = playbook(tmp_path, "    - ansible.builtin.debug:\n        msg: hi\n")
    assert executor.run(request(path), ident="same").status == "successful"

    result = executor.run(request(path), ident="same")

    assert result.status == "error"
    assert "same" in (result.error or "")


# -- the child's environment ---------------------------------------------------------


def test_ansible_gets_an_allow_listed_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    canaries = {
        "GEMINI_API_KEY": "gemini-env-canary-1",
        "AUTOSRE_SECRET_KEY": "session-env-canary-2" * 2,
        "NOT_DECLARED": "undeclared-env-canary-3",
    }
    for name, value in canaries.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("PASS_ME_THROUGH", "declared-value-4")
    inventory = local_inventory(tmp_path / "inventory.yml", HOST)
    executor = AnsibleRunnerExecutor(
        runs_dir=tmp_path / "runs",
        inventory_path=inventory,
    )
    out = tmp_path / "out"
    out.mkdir()
    run = RunRequest(
        action="test",
        playbook=str(TEST_PLAYBOOKS / "env_probe.yml"),
        hosts=(HOST,),
        extra_vars={"out_dir": str(out)},
        # An engine variable named here still never passes (the policy refuses it too).
        env=("PASS_ME_THROUGH", "AUTOSRE_SECRET_KEY"),
    )

    result = executor.run(run, ident="env-1")

    assert result.status == "successful", result
    module_env = dict(
        line.split("=", 1) for line in (out / "module.env").read_text().splitlines() if "=" in line
    )
    assert module_env["PASS_ME_THROUGH"] == "declared-value-4"
    assert module_env["PATH"].split(":")[0] == str(Path(sys.executable).parent)
    assert "HOME" in module_env
    assert not [name for name in module_env if name.startswith("AUTOSRE_")]
    controller = (out / "controller.env").read_text()
    assert "declared-value-4" in controller
    command = json.loads((Path(result.artifact_dir) / "command").read_text())
    for name, value in canaries.items():
        assert name not in module_env
        assert value not in controller
        assert name not in command["env"]


# -- extra vars are data ------------------------------------------------------------


class _UnsafeLoader(yaml.SafeLoader):
    """Reads ``!unsafe`` as Ansible does for the value's text: a plain string."""


def _unsafe_text(loader: yaml.SafeLoader, node: yaml.Node) -> str:
    assert isinstance(node, yaml.ScalarNode)
    return str(loader.construct_scalar(node))


_UnsafeLoader.add_constructor("!unsafe", _unsafe_text)


@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,20}", fullmatch=True), st.text()))
@example({"_": "!unsafe"})  # a value that spells the tag is still one tagged value
def test_vars_file_reads_back_exactly_and_every_value_is_unsafe(values: dict[str, str]) -> None:
    text = vars_yaml(values)
    assert text.isascii()
    document = yaml.compose(text, Loader=yaml.SafeLoader)
    assert isinstance(document, yaml.MappingNode)
    assert len(document.value) == len(values)
    assert all(value.tag == "!unsafe" for _, value in document.value)
    assert yaml.load(text, Loader=_UnsafeLoader) == values


def test_extra_vars_are_never_templated(executor: AnsibleRunnerExecutor, tmp_path: Path) -> None:
    canary = tmp_path / "templated-canary"
    values = ["{{ 7*7 }}", f"{{{{ lookup('pipe','touch {canary}') }}}}", "{% raw %}x"]
    for number, value in enumerate(values):
        dest = tmp_path / f"out-{number}.txt"
        run = RunRequest(
            action="test",
            playbook=str(TEST_PLAYBOOKS / "write_var.yml"),
            hosts=(HOST,),
            extra_vars={"v": value, "dest": str(dest)},
        )

        result = executor.run(run, ident=f"unsafe-{number}")

        assert result.status == "successful", result
        assert dest.read_text() == value
    assert not canary.exists()


# -- redaction while the run is live --------------------------------------------------


def test_events_and_stdout_are_redacted_before_they_reach_the_run_dir(
    tmp_path: Path,
) -> None:
    secret = 'qx"var\\sec-8812'
    inventory = local_inventory(tmp_path / "inventory.yml", HOST)
    executor = AnsibleRunnerExecutor(
        runs_dir=tmp_path / "runs",
        inventory_path=inventory,
        redactor=Redactor(["engine-known-5521"]),
    )
    path = playbook(
        tmp_path,
        "    - ansible.builtin.debug:\n        msg: 'token {{ token }} engine-known-5521'\n"
        + SLEEP_TASK.format(seconds="1.5"),
    )
    run = request(path, extra_vars={"token": secret}, secret_vars=frozenset({"token"}))
    run_dir = tmp_path / "runs" / "live-1"
    results: list[RunResult] = []
    thread = threading.Thread(target=lambda: results.append(executor.run(run, ident="live-1")))
    seen: list[str] = []

    thread.start()
    while thread.is_alive():
        for file in (p for p in run_dir.rglob("*") if p.is_file()):
            try:
                seen.append(file.read_text(errors="replace"))
            except FileNotFoundError:
                continue  # renamed by runner between listing and reading
        time.sleep(0.02)
    thread.join()

    assert results[0].status == "successful", results[0]
    content = "\n".join(seen)
    assert f"token {REDACTED} {REDACTED}" in content  # the live output was seen, redacted
    forms = encodings(secret) | encodings("engine-known-5521")
    assert not [form for form in forms if form in content]
    assert not list(run_dir.rglob("*-partial.json"))


def test_a_batch_works_on_all_its_hosts_at_once_and_names_each_failure(
    executor: AnsibleRunnerExecutor, tmp_path: Path
) -> None:
    # Ansible's default of 5 forks would make a batch of many hosts go round by round.
    path = playbook(
        tmp_path, "    - ansible.builtin.fail:\n        msg: boom on {{ inventory_hostname }}\n"
    )
    both = RunRequest(action="test", playbook=path, hosts=(HOST, "other-host"))

    result = executor.run(both, ident="batch-1")

    command = json.loads((Path(result.artifact_dir) / "command").read_text())
    forks = command["command"][command["command"].index("--forks") + 1]
    assert forks == "2"
    assert result.host_errors == {
        HOST: f"failed at task 'ansible.builtin.fail': boom on {HOST}",
        "other-host": "failed at task 'ansible.builtin.fail': boom on other-host",
    }
