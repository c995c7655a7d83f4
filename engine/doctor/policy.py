"""The policy check: the file is valid, its playbooks exist, and they pass
``ansible-playbook --syntax-check`` (one bounded run for them all; a broken one is named)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from engine.doctor.report import Finding, fail, ok
from engine.errors import AutoSREError
from engine.policy.load import load_policy
from engine.policy.schema import Policy

NAME = "policy"
TAIL = 300  # characters of ansible-playbook's complaint shown


def ansible_playbook() -> str:
    """ansible-playbook beside this Python (the venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "ansible-playbook"
    return str(beside) if beside.is_file() else "ansible-playbook"


def check_policy(
    policy_file: Path,
    playbook_dir: Path,
    *,
    inventory: Path,
    env: Mapping[str, str],
    timeout: float,
) -> list[Finding]:
    """The policy's line: ok, or FAIL naming the playbook that fails its syntax check."""
    try:
        policy = load_policy(policy_file, playbook_dir=playbook_dir)
    except AutoSREError as exc:
        return [fail(NAME, str(exc))]
    books = sorted({action.playbook for action in policy.actions.values()})
    paths = [playbook_dir / book for book in books]
    # One ansible-playbook for them all: one interpreter start (~1 s of CPU), not one each.
    # It stops at the first broken playbook, and names its file.
    why = syntax_problem(paths, inventory=inventory, env=env, timeout=timeout)
    if why is None:
        return [ok(NAME, f"{policy_file} is valid; {_playbooks(policy, len(books))} pass")]
    named = [book for book, path in zip(books, paths, strict=True) if str(path) in why]
    if not named:
        return [fail(NAME, why)]
    return [fail(f"{NAME} {book}", why) for book in named]


def _playbooks(policy: Policy, count: int) -> str:
    actions = len(policy.actions)
    return f"{actions} action(s), {count} playbook(s), --syntax-check"


def syntax_problem(
    playbooks: Sequence[Path], *, inventory: Path, env: Mapping[str, str], timeout: float
) -> str | None:
    """None when the playbooks pass ``--syntax-check``; else Ansible's last words."""
    command = [ansible_playbook(), "--syntax-check", "-i", str(inventory), *map(str, playbooks)]
    try:
        done = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout, env=dict(env), check=False
        )
    except subprocess.TimeoutExpired:
        return f"--syntax-check gave no answer within {timeout:g}s"
    except OSError as exc:
        return f"cannot run ansible-playbook: {exc}"
    if done.returncode == 0:
        return None
    lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    text = " ".join(line for line in lines if not line.startswith("[WARNING]"))
    return f"--syntax-check failed: {text[:TAIL]}"
