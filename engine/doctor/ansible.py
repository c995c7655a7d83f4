"""The Ansible check: one ``ping`` module run over the whole inventory through
ansible-runner, forks bounded, the whole run bounded in time; unreachable hosts named."""

from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ansible_runner.interface import init_runner

from engine.doctor.report import Finding, fail, names, ok
from engine.settings import child_environment, environment_additions, is_engine_variable

NAME = "ansible"
MAX_FORKS = 50
# No retry files left beside the inventory.
_SETTINGS = {"ANSIBLE_RETRY_FILES_ENABLED": "False"}


def check_ansible(inventory: Path, hosts: int, *, timeout: float) -> list[Finding]:
    """ok when every host answers ``ping``; FAIL naming the unreachable and failed ones."""
    with tempfile.TemporaryDirectory(prefix="autosre-doctor-") as private:
        runner = init_runner(
            private_data_dir=private,
            module="ping",
            host_pattern="all",
            inventory=str(inventory),
            forks=max(1, min(hosts, MAX_FORKS)),
            timeout=int(max(1, timeout)),
            quiet=True,
            settings={"pexpect_timeout": 0.2, "suppress_output_file": True},
            envvars=_SETTINGS,
            cancel_callback=lambda: False,  # without one, runner installs signal handlers
        )
        runner.config.env = _child_env(runner.config.env)
        runner.run()
        status, stats = str(runner.status), runner.stats
    return [_finding(status, stats, hosts, timeout)]


def _child_env(runner_env: Mapping[str, str]) -> dict[str, str]:
    """The allow-listed environment (as for playbook runs): never the engine's own."""
    env = child_environment() | environment_additions(runner_env)
    env |= {key: value for key, value in runner_env.items() if key.startswith("ANSIBLE_")}
    base = env.get("PATH") or os.defpath
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), base])
    return {name: value for name, value in env.items() if not is_engine_variable(name)}


def _finding(status: str, stats: Any, hosts: int, timeout: float) -> Finding:
    if status == "timeout":
        return fail(NAME, f"ping of {hosts} host(s) did not end within {timeout:g}s")
    if not isinstance(stats, dict):
        return fail(NAME, f"ansible-runner ended {status} with no host results")
    dark = set(stats.get("dark") or {})
    failed = set(stats.get("failures") or {}) - dark
    answered = set(stats.get("ok") or {}) - dark - failed
    problems = []
    if dark:
        problems.append(f"unreachable: {names(dark)}")
    if failed:
        problems.append(f"ping failed: {names(failed)}")
    if problems or len(answered) < hosts:
        silent = hosts - len(answered) - len(dark) - len(failed)
        if silent > 0:
            problems.append(f"{silent} host(s) gave no result")
        return fail(NAME, f"{len(answered)} of {hosts} host(s) answer ping; " + "; ".join(problems))
    return ok(NAME, f"{hosts} host(s) answer ping")
