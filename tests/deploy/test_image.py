"""The image (Dockerfile): hadolint, a checklist of what hadolint does not hold us to, and
the build for real: the build stage's steps carried out in order in a scratch directory
(tests/deploy/dockerfile.py), then the runtime stage's files and settings checked with the
autosre it built. No container runtime is used: none works on this machine."""

from __future__ import annotations

import fnmatch
import os
import re
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.conftest import HOST_DIR, ROOT, offline_pip, run, tool
from tests.deploy.dockerfile import ScratchBuilder, Stage, instructions, stages

DOCKERFILES = [ROOT / "Dockerfile", HOST_DIR / "Dockerfile"]
BUILD_TIMEOUT = 240.0  # seconds for one RUN step (a pip install of every pin)


def image_stages() -> list[Stage]:
    return stages((ROOT / "Dockerfile").read_text())


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_hadolint_passes(dockerfile: Path) -> None:
    done = run([tool("hadolint"), "--no-color", str(dockerfile)])
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_the_checklist(dockerfile: Path) -> None:
    steps = instructions(dockerfile.read_text())
    runtime = stages(dockerfile.read_text())[-1]
    for base in (s.base for s in stages(dockerfile.read_text())):
        tag = base.partition(":")[2]
        assert tag and tag != "latest", f"{base}: the base image is not pinned by tag"
    assert not [s for s in steps if s.keyword == "ADD"], "COPY, never ADD (no URLs, no tars)"
    for step in steps:
        if step.keyword in {"ENV", "ARG"}:
            names = [w.partition("=")[0] for w in step.words()]
            secret = [n for n in names if re.search(r"(?i)secret|token|password|_key$", n)]
            assert not secret, f"{secret}: secrets are given at run time, never built in"
        if step.keyword == "RUN" and "pip" in step.args and " install " in step.args:
            assert "--no-cache-dir" in step.args, step.args
        if step.keyword == "RUN" and "apt-get install" in step.args:
            assert "--no-install-recommends" in step.args, step.args
            assert "rm -rf /var/lib/apt/lists/*" in step.args, step.args
            assert "apt-get update" in step.args, "update and install in one layer"
    assert runtime.all("HEALTHCHECK"), "no HEALTHCHECK in the final stage"
    assert runtime.all("ENTRYPOINT"), "no ENTRYPOINT"
    if dockerfile == ROOT / "Dockerfile":
        user = runtime.all("USER")
        assert user, "the image runs as root"
        assert user[-1].args.split(":")[0] not in {"root", "0"}
        assert runtime.all("ENTRYPOINT")[0].words()[0] == "tini", "PID 1 reaps and forwards"


def test_dockerignore_lets_in_what_is_copied_and_nothing_else() -> None:
    rules = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]

    def included(path: str) -> bool:
        keep = True
        for rule in rules:
            negate = rule.startswith("!")
            pattern = rule.lstrip("!").rstrip("/")
            if fnmatch.fnmatch(path, pattern) or path.startswith(pattern + "/"):
                keep = negate
        return keep

    # Both images build from the checkout (docker-compose.yml: `context: .`).
    for stage in (s for dockerfile in DOCKERFILES for s in stages(dockerfile.read_text())):
        for copy in stage.all("COPY"):
            if not any(f.startswith("--from") for f in copy.flags):
                for source in copy.words()[:-1]:
                    assert (ROOT / source).exists(), source
                    assert included(source), f"{source} is copied but .dockerignore leaves it out"
    for private in (".venv", ".git", "data", ".lab", "tests", "engine/__pycache__"):
        assert not included(private), f"{private} would reach the build context"


@pytest.fixture
def scratch(tmp_path: Path) -> Iterator[Path]:
    """tmp_path, emptied afterwards: the venv built there weighs a few hundred MB."""
    try:
        yield tmp_path
    finally:
        shutil.rmtree(tmp_path / "root", ignore_errors=True)


def test_the_build_runs_for_real_and_the_image_is_usable(scratch: Path) -> None:
    tmp_path = scratch
    # The build stage's RUN steps, as written and in order (the real pinned install, then
    # the project); then the runtime stage's COPY and ENV (its RUN steps, apt-get and
    # useradd, would change this machine and are skipped).
    build, runtime = image_stages()
    assert build.name == "build"
    bindir = tmp_path / "bin"  # the image's `python`: this interpreter
    bindir.mkdir()
    (bindir / "python").symlink_to(sys.executable)
    builder = ScratchBuilder(
        ROOT,
        tmp_path / "root",
        path=f"{bindir}:/usr/bin:/bin",
        timeout=BUILD_TIMEOUT,
        outside=offline_pip(),
    )
    ran = builder.run_stage(build)
    assert any("-r requirements.txt" in step for step in ran)
    assert any("--no-deps ." in step for step in ran)
    builder.run_stage(runtime, run_steps=False)
    env = {**os.environ, **builder.env, "HOME": str(tmp_path)}
    env["AUTOSRE_DATA_DIR"] = str(tmp_path / "data")
    venv = Path(builder.rerooted("/opt/venv"))

    done = run(["autosre", "--help"], env=env, cwd=builder.workdir)
    assert done.returncode == 0, done.stderr
    assert "db upgrade" in done.stdout or "{run," in done.stdout
    # ansible-core is in the image, the UI's templates are installed (package data), and
    # the image's default policy names playbooks that are where its settings say.
    done = run([str(venv / "bin" / "ansible-playbook"), "--version"], env=env)
    assert done.returncode == 0 and "core 2.19" in done.stdout, done.stdout + done.stderr
    code = "import webui, pathlib; print(pathlib.Path(webui.__file__).parent)"
    done = run([str(venv / "bin" / "python"), "-c", code], env=env, cwd=tmp_path)
    assert Path(done.stdout.strip(), "templates").is_dir()
    assert Path(done.stdout.strip()).is_relative_to(venv), "installed, not editable"
    done = run(["autosre", "policy", "check"], env=env, cwd=builder.workdir)
    assert done.returncode == 0, done.stdout + done.stderr
    done = run(["autosre", "playbook", "list"], env=env, cwd=builder.workdir)
    assert done.returncode == 0 and "restart_nginx" in done.stdout, done.stdout + done.stderr
    entrypoint = Path(builder.rerooted("/usr/local/bin/autosre-entrypoint"))
    assert os.access(entrypoint, os.X_OK)
    done = run([str(entrypoint), "--version"], env=env)
    assert done.returncode == 0 and "autosre" in done.stdout + done.stderr
