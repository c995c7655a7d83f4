"""Only ``autosre db upgrade`` migrates: opening the store checks the schema in one query and
refuses a database that is behind, ahead, or empty, naming the command that fixes it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, event, text
from sqlalchemy.engine import make_url

from autosre.cli import main
from engine.errors import StoreError
from engine.store import open_engine, open_store
from engine.store.migrate import alembic_config, migrate_to_head, upgrade
from engine.store.schema import HEAD, REVISIONS

ROOT = Path(__file__).resolve().parents[2]
AUTOSRE = Path(sys.executable).parent / "autosre"
PASSWORD = "store-pw-canary"


def shown(url: str) -> str:
    """The URL as the messages show it: the password masked."""
    return make_url(url).render_as_string(hide_password=True)


def at_revision(url: str, revision: str) -> None:
    """Migrate the empty database at url up to revision."""
    engine = open_engine(url)
    try:
        upgrade(engine, revision)
    finally:
        engine.dispose()


def with_password(url: str) -> str:
    """The URL with a password (PostgreSQL's trust auth ignores it; SQLite has none)."""
    if url.startswith("sqlite"):
        return url
    return make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)


def test_the_known_revisions_are_alembics() -> None:
    scripts = ScriptDirectory.from_config(alembic_config("sqlite://"))
    assert scripts.get_heads() == [HEAD]
    assert tuple(reversed([script.revision for script in scripts.walk_revisions()])) == REVISIONS


def test_an_empty_database_is_refused(empty_store_url: str) -> None:
    url = with_password(empty_store_url)
    if url.startswith("sqlite"):
        path = Path(make_url(url).database or "")
        path.parent.mkdir(parents=True)
        path.touch()  # an empty file is an SQLite database with no tables
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert str(caught.value) == (
        f"the database at {shown(url)} has no schema yet, this AutoSRE needs {HEAD}: "
        "run `autosre db upgrade`"
    )
    assert PASSWORD not in str(caught.value)


def test_an_older_schema_is_refused_until_upgraded(empty_store_url: str) -> None:
    url = with_password(empty_store_url)
    at_revision(url, "0004")
    with pytest.raises(StoreError) as caught:
        open_store(url)
    assert str(caught.value) == (
        f"the database at {shown(url)} has schema 0004, this AutoSRE needs {HEAD}: "
        "run `autosre db upgrade`"
    )
    assert PASSWORD not in str(caught.value)
    assert migrate_to_head(url) == "0004"
    assert migrate_to_head(url) == HEAD  # a second upgrade changes nothing
    sessions = open_store(url)
    try:
        with sessions() as session:
            assert session.scalar(text("SELECT version_num FROM alembic_version")) == HEAD
    finally:
        sessions.kw["bind"].dispose()


def test_a_newer_or_unknown_schema_is_refused(store_url: str) -> None:
    engine = open_engine(store_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0099'"))
    finally:
        engine.dispose()
    with pytest.raises(StoreError, match="has schema '0099', which this AutoSRE does not know"):
        open_store(store_url)
    with pytest.raises(StoreError, match="cannot migrate"):
        migrate_to_head(store_url)  # Alembic has no script for 0099 either


def test_opening_checks_the_schema_in_one_query(store_url: str) -> None:
    statements: list[str] = []

    def count(*args: object) -> None:
        statements.append(str(args[2]))

    event.listen(Engine, "before_cursor_execute", count)  # every engine, this one included
    try:
        sessions = open_store(store_url)
    finally:
        event.remove(Engine, "before_cursor_execute", count)
    sessions.kw["bind"].dispose()
    assert statements == ["SELECT version_num FROM alembic_version"]


def test_opening_never_loads_the_migrations(store_url: str) -> None:
    probe = (
        "import sys\n"
        "from engine.store import open_store\n"
        f"open_store({store_url!r}).kw['bind'].dispose()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_a_folder_that_cannot_be_made_is_a_store_error(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(StoreError, match="cannot create the folder of"):
        migrate_to_head(f"sqlite:///{blocker / 'data' / 'autosre.db'}")


# -- the CLI: every command refuses an old store; `autosre db upgrade` fixes it ---------------


@pytest.fixture
def cli_env(
    empty_store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[str, str]:
    """The CLI's environment on a store at 0004; returns its URL and how messages show it."""
    url = with_password(empty_store_url)
    at_revision(url, "0004")
    monkeypatch.setenv("AUTOSRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUTOSRE_DATABASE_URL", url)
    monkeypatch.setenv("AUTOSRE_POLICY", str(ROOT / "policies" / "lab.yaml"))
    monkeypatch.setenv("AUTOSRE_INVENTORY", str(ROOT / "inventory" / "lab.yml"))
    return url, shown(url)


def test_cli_refuses_an_old_store_until_db_upgrade(
    cli_env: tuple[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    _, where = cli_env
    message = (
        f"autosre: error: the database at {where} has schema 0004, this AutoSRE needs {HEAD}: "
        "run `autosre db upgrade`\n"
    )
    for argv in (["incidents", "list"], ["approvals", "list"], ["users", "list"]):
        assert main(argv) == 2, argv
        out, err = capsys.readouterr()
        assert (out, err) == ("", message), argv
    assert main(["db", "upgrade"]) == 0
    out, _ = capsys.readouterr()
    assert out == f"database {where} is at the newest schema, {HEAD} (it had schema 0004)\n"
    assert PASSWORD not in out
    # users list closes its store (incidents list leaves that to the process's exit).
    assert main(["users", "list", "--json"]) == 0
    assert capsys.readouterr().out == "[]\n"


def test_the_real_cli_refuses_an_old_store_until_db_upgrade(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'data' / 'autosre.db'}"
    at_revision(url, "0004")
    env = {
        "PATH": "/usr/bin:/bin",
        "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
        "AUTOSRE_POLICY": str(ROOT / "policies" / "lab.yaml"),
        "AUTOSRE_INVENTORY": str(ROOT / "inventory" / "lab.yml"),
    }

    def autosre(*argv: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(AUTOSRE), *argv], env=env, capture_output=True, text=True, timeout=60, check=False
        )

    refused = autosre("incidents", "list")
    assert refused.returncode == 2
    assert refused.stderr == (
        f"autosre: error: the database at {url} has schema 0004, this AutoSRE needs {HEAD}: "
        "run `autosre db upgrade`\n"
    )
    assert autosre("db", "upgrade").returncode == 0
    listed = autosre("incidents", "list", "--json")
    assert (listed.returncode, listed.stdout) == (0, "[]\n")
