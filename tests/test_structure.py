"""The shape of the code: engine imports neither the web UI nor the CLI, its modules stay
small, and every error raised on purpose belongs to the one tree under AutoSREError."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import autosre
import engine
import webui
from engine.errors import AutoSREError

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 300


def modules(package: str) -> list[Path]:
    return sorted(
        path
        for path in (ROOT / package).rglob("*.py")
        if "migrations" not in path.parts and "__pycache__" not in path.parts
    )


def imported(path: Path) -> set[str]:
    """Every module a file imports (absolute names; relative imports are not used here)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            assert node.level == 0, f"{path}: relative import"
            found.add(node.module)
    return found


@pytest.mark.parametrize("path", modules("engine"), ids=lambda p: str(p.relative_to(ROOT)))
def test_engine_imports_neither_the_web_ui_nor_the_cli(path: Path) -> None:
    outside = sorted(
        name for name in imported(path) if name.split(".")[0] in {"webui", "autosre", "tests"}
    )
    assert not outside, f"{path.relative_to(ROOT)} imports {outside}"


@pytest.mark.parametrize("path", modules("engine"), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_engine_module_is_under_300_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines < MAX_LINES, f"{path.relative_to(ROOT)} has {lines} lines: split it"


def test_webui_never_imports_the_cli() -> None:
    for path in modules("webui"):
        outside = sorted(n for n in imported(path) if n.split(".")[0] in {"autosre", "tests"})
        assert not outside, f"{path.relative_to(ROOT)} imports {outside}"


def test_every_error_class_is_in_the_one_tree() -> None:
    strays = []
    for package in (engine, webui, autosre):
        for info in pkgutil.walk_packages(package.__path__, f"{package.__name__}."):
            if ".migrations" in info.name:
                continue
            module = importlib.import_module(info.name)
            for name, value in vars(module).items():
                if (
                    inspect.isclass(value)
                    and issubclass(value, BaseException)
                    and value.__module__ == module.__name__
                    and not issubclass(value, AutoSREError)
                ):
                    strays.append(f"{module.__name__}.{name}")
    assert not strays, f"errors outside the AutoSREError tree: {strays}"


def test_serial_tests_live_where_make_test_runs_them() -> None:
    """`make test` runs the tests marked serial from tests/integration alone, after the rest;
    one marked elsewhere would run in neither phase."""
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    assert "SERIAL_TESTS := tests/integration\n" in makefile
    elsewhere = [
        str(path.relative_to(ROOT))
        for path in (ROOT / "tests").rglob("test_*.py")
        if path != Path(__file__).resolve()
        and "mark.serial" in path.read_text(encoding="utf-8")
        and (ROOT / "tests" / "integration") not in path.parents
    ]
    assert elsewhere == [], f"marked serial outside tests/integration: {elsewhere}"
