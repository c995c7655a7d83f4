"""The ``lab`` fixture: a 4-host lab shared by a test module, down after its last test."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.lab.errors import LabError
from tests.lab.lab import Lab, preflight


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Hosts web1..web4 up (SSH, nginx, exporter, Prometheus); skipped where the machine
    cannot hold a lab (not root, no sshd, no cgroups), with the reason."""
    try:
        preflight()
    except LabError as exc:
        pytest.skip(f"no lab on this machine: {exc}")
    with Lab(tmp_path_factory.mktemp("lab") / "lab", hosts=4) as running:
        yield running
