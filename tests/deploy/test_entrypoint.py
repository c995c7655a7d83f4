"""The image's entrypoint (deploy/entrypoint.sh) and the demo's shell scripts: they parse
(`sh -n`, shellcheck), and the entrypoint does what the image relies on, run for real with
this checkout's autosre: subcommands reach autosre, `web` and `run` are health-checked the
way the HEALTHCHECK says, one-shot commands are always healthy."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.conftest import COMPOSE_DIR, HOST_DIR, ROOT, free_port, run, tool

ENTRYPOINT = ROOT / "deploy" / "entrypoint.sh"
SCRIPTS = [
    ENTRYPOINT,
    COMPOSE_DIR / "keygen.sh",
    HOST_DIR / "entrypoint.sh",
    HOST_DIR / "chaos.sh",
    HOST_DIR / "provision.sh",
]
START_TIMEOUT = 30.0


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_script_parses_and_passes_shellcheck(script: Path) -> None:
    done = run(["sh", "-n", str(script)])
    assert done.returncode == 0, done.stderr
    done = run([tool("shellcheck"), "--shell=sh", str(script)])
    assert done.returncode == 0, done.stdout
    assert os.access(script, os.X_OK), f"{script} is not executable"


def test_the_entrypoint_knows_every_autosre_subcommand() -> None:
    done = run([tool("autosre"), "--help"])
    choices = re.search(r"\{([a-z,-]+)\}", done.stdout)
    assert choices, done.stdout
    listed = re.search(r'SUBCOMMANDS=" ([a-z -]+) "', ENTRYPOINT.read_text())
    assert listed, "no SUBCOMMANDS in the entrypoint"
    assert set(listed.group(1).split()) == set(choices.group(1).split(","))


@pytest.fixture
def image_env(tmp_path: Path) -> dict[str, str]:
    """An environment like the image's: autosre on PATH, settings in AUTOSRE_*, a store."""
    env = {
        "PATH": f"{Path(sys.executable).parent}:/usr/bin:/bin",
        "HOME": str(tmp_path),
        "TMPDIR": str(tmp_path),
        "LANG": "C.UTF-8",
        "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
    }
    done = run([str(ENTRYPOINT), "db", "upgrade"], env=env, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    return env


def entrypoint(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return run([str(ENTRYPOINT), *args], env=env, cwd=ROOT, timeout=60)


def test_one_shot_commands_reach_autosre_and_are_healthy(image_env: dict[str, str]) -> None:
    for args in (["--version"], ["autosre", "--version"]):
        done = entrypoint(*args, env=image_env)
        assert done.returncode == 0 and "autosre" in done.stdout + done.stderr, args
    done = entrypoint("users", "list", "--json", env=image_env)
    assert done.returncode == 0 and done.stdout.strip() == "[]", done.stdout + done.stderr
    assert entrypoint("healthcheck", env=image_env).returncode == 0
    done = entrypoint("sh", "-c", "echo other commands run as given", env=image_env)
    assert done.stdout.strip() == "other commands run as given"


@pytest.fixture
def web(image_env: dict[str, str], tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`entrypoint web` on a free port, stopped by pid."""
    port = free_port()
    with (tmp_path / "web.log").open("wb") as log:
        proc = subprocess.Popen(
            [str(ENTRYPOINT), "web", "--host", "0.0.0.0", "--port", str(port)],
            env=image_env,
            cwd=ROOT,
            stdout=log,
            stderr=subprocess.PIPE,
        )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        assert proc.poll() is None, (tmp_path / "web.log").read_text()
        yield proc
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        if proc.stderr is not None:
            proc.stderr.close()


def test_web_is_healthy_while_it_answers(
    web: subprocess.Popen[bytes], image_env: dict[str, str], tmp_path: Path
) -> None:
    role = (tmp_path / "autosre-entrypoint.role").read_text().split()
    assert role[:2] == ["web", "127.0.0.1"], "bound to every address: asked on the loopback"
    assert entrypoint("healthcheck", env=image_env).returncode == 0
    # Its log lines (stderr) go to stdout: nothing reached the stderr pipe.
    web.send_signal(signal.SIGTERM)
    web.wait(timeout=30)
    assert web.stderr is not None and web.stderr.read() == b""
    assert (tmp_path / "web.log").read_text().strip(), "no log line on stdout"
    assert entrypoint("healthcheck", env=image_env).returncode != 0, "stopped, yet healthy"


def test_the_engine_is_healthy_while_it_ticks(image_env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "autosre-entrypoint.role").write_text("run\n")
    done = entrypoint("healthcheck", env=image_env)
    assert done.returncode == 1 and "has not ticked yet" in done.stderr, done.stderr
    done = entrypoint("run", "--once", env=image_env)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr == "", "the engine's log goes to stdout"
    assert (tmp_path / "autosre-entrypoint.role").read_text() == "run\n"
    # Fresh within three intervals (10 s each), by /healthz's own rule (tick_late, which
    # tests/webui/test_health.py checks for a late tick).
    assert entrypoint("healthcheck", env=image_env).returncode == 0
