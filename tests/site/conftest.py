"""Helpers for the site playbook and Vagrant tests: the repository's root, and the tools
they run (tests/fixtures/tools.py)."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures.tools import run, tool

ROOT = Path(__file__).resolve().parents[2]
__all__ = ["ROOT", "run", "tool"]
