"""Accounts and API tokens on both real backends; migrations 0003 and 0005; ``autosre users|web``.

Store fixtures (``store_url``, ``sessions``, ``opened``) are in tests/engine/conftest.py.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Engine, inspect, select, text
from sqlalchemy.orm import Session, sessionmaker

from autosre.cli import main
from engine.accounts import users as users_module
from engine.accounts.login_limits import LoginLimiter, LoginLimits
from engine.accounts.sessions import create_session
from engine.accounts.users import (
    ROLES,
    UserInfo,
    authenticate,
    create_token,
    create_user,
    disable_user,
    get_user,
    has_role,
    set_password,
    set_role,
    user_for_session,
    user_for_token,
)
from engine.errors import SettingsError, UserError
from engine.settings import load_settings
from engine.store import open_engine, open_store
from engine.store.accounts import ApiToken, User
from engine.store.migrate import downgrade, upgrade
from engine.store.models import EngineStat, HostStateRow
from engine.store.tables import Base
from tests.fixtures.reads import list_users
from tests.fixtures.store import migrated_sqlite

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "correct horse battery staple"
T0 = 1_700_000_000.0
NEW_TABLES = {"users", "api_tokens", "host_states", "engine_stats"}
SESSION_TABLES = {"web_sessions", "login_failures"}


# -- the store ----------------------------------------------------------------------------


def test_models_match_the_migrations(sessions: sessionmaker[Session]) -> None:
    engine: Engine = sessions.kw["bind"]
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "compare_server_default": True}
        )
        assert compare_metadata(context, Base.metadata) == []


def test_migration_0003_up_and_down(empty_store_url: str) -> None:
    engine = open_engine(empty_store_url)
    try:
        upgrade(engine, "0002")
        assert not NEW_TABLES & set(inspect(engine).get_table_names())
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= NEW_TABLES
        downgrade(engine, "0002")
        assert not NEW_TABLES & set(inspect(engine).get_table_names())
        assert "approvals" in inspect(engine).get_table_names()
        upgrade(engine)
    finally:
        engine.dispose()


def test_migration_0005_up_and_down(empty_store_url: str) -> None:
    engine = open_engine(empty_store_url)
    try:
        upgrade(engine, "0004")
        assert not SESSION_TABLES & set(inspect(engine).get_table_names())
        with engine.begin() as conn:
            conn.execute(
                text(
                    "INSERT INTO users (id, name, password_hash, role, created_at, disabled)"
                    " VALUES (7, 'alice', 'x', 'admin', :t, :f)"
                ),
                {"t": "2023-11-14 22:13:20+00:00", "f": False},
            )
        upgrade(engine, "0005")
        assert set(inspect(engine).get_table_names()) >= SESSION_TABLES
        indexes = {i["name"] for i in inspect(engine).get_indexes("login_failures")}
        assert indexes >= {"ix_login_failures_address_at", "ix_login_failures_name_at"}
        sessions = sessionmaker(engine)
        token = create_session(sessions, 7, lifetime=60.0)
        user = user_for_session(sessions, token)
        assert user is not None
        assert user[0].name == "alice"
        LoginLimiter(sessions, LoginLimits()).failed("192.0.2.1", "alice")
        downgrade(engine, "0004")
        assert not SESSION_TABLES & set(inspect(engine).get_table_names())
        with engine.connect() as conn:
            assert conn.scalar(text("SELECT name FROM users")) == "alice"
        upgrade(engine)
        assert set(inspect(engine).get_table_names()) >= SESSION_TABLES
    finally:
        engine.dispose()


def test_host_state_and_engine_stat_rows(sessions: sessionmaker[Session]) -> None:
    now = datetime.fromtimestamp(T0, tz=UTC)
    with sessions.begin() as session:
        session.add(
            HostStateRow(
                host="web1",
                status="high_cpu",
                value=97.5,
                reason="above 90% for 12s",
                since=now,
                sample_ts=None,
                updated_at=now,
                recent=[[T0 - 1, 96.0], [T0, 97.5]],
            )
        )
        session.add(EngineStat(name="ticks_total", value=3.0, updated_at=now))
    with sessions() as session:
        row = session.get_one(HostStateRow, "web1")
        assert row.recent == [[T0 - 1, 96.0], [T0, 97.5]]
        assert row.since == now
        assert row.since.tzinfo is not None
        assert row.sample_ts is None
        assert session.get_one(EngineStat, "ticks_total").value == 3.0


# -- users ----------------------------------------------------------------------------------


def test_create_and_authenticate(sessions: sessionmaker[Session]) -> None:
    user = create_user(sessions, "alice", PASSWORD, "operator", at=T0)
    assert user == UserInfo(id=user.id, name="alice", role="operator")
    assert authenticate(sessions, "alice", PASSWORD) == user
    assert authenticate(sessions, "alice", PASSWORD + "x") is None
    assert authenticate(sessions, "bob", PASSWORD) is None
    assert authenticate(sessions, "alice", "y" * 5000) is None
    assert get_user(sessions, user.id) == user
    assert get_user(sessions, user.id + 1000) is None
    with sessions() as session:
        row = session.get_one(User, user.id)
        assert PASSWORD not in row.password_hash
        # The method in force (a cheap one in tests; test_passwords.py checks scrypt).
        assert row.password_hash.startswith(users_module.PASSWORD_HASH_METHOD + "$")
        assert row.created_at == datetime.fromtimestamp(T0, tz=UTC)
        assert row.disabled is False


@pytest.mark.parametrize(
    ("name", "password", "role", "message"),
    [
        ("Alice", PASSWORD, "viewer", "invalid user name 'Alice'"),
        ("1alice", PASSWORD, "viewer", "invalid user name"),
        ("al ice", PASSWORD, "viewer", "invalid user name"),
        ("a" * 65, PASSWORD, "viewer", "invalid user name"),
        ("", PASSWORD, "viewer", "invalid user name"),
        ("alice", "short", "viewer", "password too short: at least 12 characters"),
        ("alice", "x" * 1025, "viewer", "password too long"),
        ("alice", PASSWORD, "root", "unknown role 'root': use one of viewer, operator, admin"),
    ],
)
def test_create_user_refuses_bad_input(
    sessions: sessionmaker[Session], name: str, password: str, role: str, message: str
) -> None:
    with pytest.raises(UserError, match=message):
        create_user(sessions, name, password, role)
    assert list_users(sessions) == []


def test_names_allowed(sessions: sessionmaker[Session]) -> None:
    for name in ("a", "ops.team-1_x", "z" * 64):
        create_user(sessions, name, PASSWORD, "viewer")
    assert [u["name"] for u in list_users(sessions)] == ["a", "ops.team-1_x", "z" * 64]


def test_duplicate_name(sessions: sessionmaker[Session]) -> None:
    create_user(sessions, "alice", PASSWORD, "viewer")
    with pytest.raises(UserError, match="user 'alice' already exists"):
        create_user(sessions, "alice", PASSWORD, "admin")


def test_set_password_set_role_disable(sessions: sessionmaker[Session]) -> None:
    user = create_user(sessions, "alice", PASSWORD, "viewer")
    set_password(sessions, "alice", "another long password")
    assert authenticate(sessions, "alice", PASSWORD) is None
    assert authenticate(sessions, "alice", "another long password") == user
    with pytest.raises(UserError, match="too short"):
        set_password(sessions, "alice", "short")
    assert set_role(sessions, "alice", "admin") == UserInfo(user.id, "alice", "admin")
    with pytest.raises(UserError, match="unknown role"):
        set_role(sessions, "alice", "god")
    disable_user(sessions, "alice")
    assert authenticate(sessions, "alice", "another long password") is None
    assert get_user(sessions, user.id) is None
    for change in (
        lambda: set_password(sessions, "nobody", PASSWORD),
        lambda: set_role(sessions, "nobody", "viewer"),
        lambda: disable_user(sessions, "nobody"),
    ):
        with pytest.raises(UserError, match="no user named 'nobody'"):
            change()


def test_unknown_user_costs_a_hash_check_too(
    sessions: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    create_user(sessions, "alice", PASSWORD, "viewer")
    checked: list[str] = []
    real = users_module.check_password_hash

    def spy(stored: str, password: str) -> bool:
        checked.append(stored)
        return real(stored, password)

    monkeypatch.setattr(users_module, "check_password_hash", spy)
    assert authenticate(sessions, "nobody", PASSWORD) is None
    assert authenticate(sessions, "alice", "wrong password!") is None
    assert len(checked) == 2
    assert checked[0].split("$")[0] == checked[1].split("$")[0]  # same method and cost


def test_list_users(sessions: sessionmaker[Session]) -> None:
    create_user(sessions, "bob", PASSWORD, "admin", at=T0)
    create_user(sessions, "alice", PASSWORD, "viewer", at=T0 + 1)
    create_token(sessions, "bob", "ci")
    create_token(sessions, "bob", "laptop")
    disable_user(sessions, "alice")
    rows = list_users(sessions)
    assert [(r["name"], r["role"], r["disabled"], r["tokens"]) for r in rows] == [
        ("alice", "viewer", True, 0),
        ("bob", "admin", False, 2),
    ]
    assert rows[1]["created_at"] == "2023-11-14T22:13:20Z"


def test_has_role() -> None:
    table = {
        "viewer": {"viewer"},
        "operator": {"viewer", "operator"},
        "admin": {"viewer", "operator", "admin"},
    }
    for role, allowed in table.items():
        user = UserInfo(1, "u", role)
        assert {needed for needed in ROLES if has_role(user, needed)} == allowed
    with pytest.raises(UserError):
        has_role(UserInfo(1, "u", "admin"), "superuser")


# -- tokens ---------------------------------------------------------------------------------


def test_tokens(sessions: sessionmaker[Session]) -> None:
    user = create_user(sessions, "alice", PASSWORD, "operator")
    token = create_token(sessions, "alice", "ci", at=T0)
    assert token.startswith("asr_")
    assert len(token) > 40
    with sessions() as session:
        row = session.scalars(select(ApiToken)).one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert row.name == "ci"
        assert row.last_used_at is None
    assert token != create_token(sessions, "alice", "ci")

    assert user_for_token(sessions, token, at=T0 + 10) == user
    assert user_for_token(sessions, token + "x") is None
    assert user_for_token(sessions, token.removeprefix("asr_")) is None
    assert user_for_token(sessions, "") is None
    assert user_for_token(sessions, "asr_" + "a" * 1000) is None


def test_token_use_is_noted_once_a_minute(sessions: sessionmaker[Session]) -> None:
    create_user(sessions, "alice", PASSWORD, "viewer")
    token = create_token(sessions, "alice", "ci", at=T0)

    def last_used() -> datetime | None:
        with sessions() as session:
            return session.scalars(select(ApiToken.last_used_at)).one()

    user_for_token(sessions, token, at=T0 + 10)
    assert last_used() == datetime.fromtimestamp(T0 + 10, tz=UTC)
    user_for_token(sessions, token, at=T0 + 30)
    assert last_used() == datetime.fromtimestamp(T0 + 10, tz=UTC)
    user_for_token(sessions, token, at=T0 + 70)
    assert last_used() == datetime.fromtimestamp(T0 + 70, tz=UTC)


def test_token_refusals(sessions: sessionmaker[Session]) -> None:
    create_user(sessions, "alice", PASSWORD, "viewer")
    token = create_token(sessions, "alice", "ci")
    with pytest.raises(UserError, match="no user named 'bob'"):
        create_token(sessions, "bob", "ci")
    with pytest.raises(UserError, match="token name must be 1-64 characters"):
        create_token(sessions, "alice", "  ")
    disable_user(sessions, "alice")
    assert user_for_token(sessions, token) is None
    with pytest.raises(UserError, match="user 'alice' is disabled"):
        create_token(sessions, "alice", "other")


# -- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def env(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AUTOSRE_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("AUTOSRE_DATABASE_URL", store_url)
    return store_url


def run(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    *argv: str,
    stdin: str = "",
) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    try:
        code = main(list(argv))
    except SystemExit as exc:  # argparse exits on usage errors
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_users_add_list_disable(
    env: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    opened: list[sessionmaker[Session]],
) -> None:
    code, out, _ = run(
        capsys, monkeypatch, "users", "add", "alice", "--role", "admin", stdin=PASSWORD + "\n"
    )
    assert (code, out) == (0, "user alice created with role admin\n")
    assert (
        run(capsys, monkeypatch, "users", "add", "bob", "--role", "viewer", stdin=PASSWORD)[0] == 0
    )

    code, out, _ = run(capsys, monkeypatch, "users", "list", "--json")
    assert code == 0
    rows = json.loads(out)
    assert [(r["name"], r["role"], r["disabled"], r["tokens"]) for r in rows] == [
        ("alice", "admin", False, 0),
        ("bob", "viewer", False, 0),
    ]
    assert set(rows[0]) == {"id", "name", "role", "disabled", "created_at", "tokens"}

    assert run(capsys, monkeypatch, "users", "disable", "bob")[:2] == (0, "user bob disabled\n")
    code, out, _ = run(capsys, monkeypatch, "users", "list")
    assert code == 0
    assert "alice" in out
    assert "disabled" in out.splitlines()[2]

    sessions = open_store(env)
    opened.append(sessions)
    # Only the first line is the password: the newline is not part of it.
    assert authenticate(sessions, "alice", PASSWORD) is not None
    assert authenticate(sessions, "bob", PASSWORD) is None  # disabled


@pytest.mark.parametrize(
    ("argv", "stdin", "message"),
    [
        (["users", "add", "alice", "--role", "admin"], "short\n", "password too short"),
        (["users", "add", "Alice", "--role", "admin"], PASSWORD, "invalid user name 'Alice'"),
        (["users", "add", "alice", "--role", "admin"], "", "password too short"),
        (["users", "disable", "nobody"], "", "no user named 'nobody'"),
        (["tokens", "create", "nobody"], "", "no user named 'nobody'"),
    ],
)
def test_cli_refusals_exit_2(
    env: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    stdin: str,
    message: str,
) -> None:
    code, out, err = run(capsys, monkeypatch, *argv, stdin=stdin)
    assert code == 2
    assert out == ""
    assert err.startswith("autosre: error: ")
    assert message in err
    assert "Traceback" not in err


def test_cli_duplicate_user_and_bad_role(
    env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert (
        run(capsys, monkeypatch, "users", "add", "alice", "--role", "admin", stdin=PASSWORD)[0] == 0
    )
    code, _, err = run(
        capsys, monkeypatch, "users", "add", "alice", "--role", "admin", stdin=PASSWORD
    )
    assert (code, err) == (2, "autosre: error: user 'alice' already exists\n")
    code, _, err = run(capsys, monkeypatch, "users", "add", "bob", "--role", "root", stdin=PASSWORD)
    assert code == 2
    assert "invalid choice: 'root'" in err


def test_cli_password_typed_twice(
    env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    typed = iter([PASSWORD, PASSWORD + "typo", PASSWORD, PASSWORD])
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(typed))
    monkeypatch.setattr(sys, "stdin", Terminal())
    assert main(["users", "add", "alice", "--role", "viewer"]) == 2
    assert "the two passwords differ" in capsys.readouterr().err
    assert main(["users", "add", "alice", "--role", "viewer"]) == 0
    assert "user alice created" in capsys.readouterr().out


def test_cli_tokens_create(
    env: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    opened: list[sessionmaker[Session]],
) -> None:
    run(capsys, monkeypatch, "users", "add", "alice", "--role", "operator", stdin=PASSWORD)
    code, out, err = run(capsys, monkeypatch, "tokens", "create", "alice", "--name", "ci")
    assert code == 0
    token = out.strip()
    assert out == token + "\n"  # stdout is the token alone, for scripts
    assert "shown once" in err
    sessions = open_store(env)
    opened.append(sessions)
    found = user_for_token(sessions, token)
    assert found is not None
    assert found.name == "alice"
    code, out, _ = run(capsys, monkeypatch, "users", "list", "--json")
    assert json.loads(out)[0]["tokens"] == 1


def web_env(tmp_path: Path) -> dict[str, str]:
    """An environment of its own for ``autosre web``: data and a migrated store in tmp_path."""
    database = tmp_path / "data" / "autosre.db"
    if not database.exists():  # a second server in the same test keeps the first one's store
        migrated_sqlite(database)
    env = {
        **os.environ,
        "AUTOSRE_DATA_DIR": str(tmp_path / "data"),
        "AUTOSRE_DATABASE_URL": f"sqlite:///{database}",
        "PYTHONUNBUFFERED": "1",
    }
    env.pop("AUTOSRE_SECRET_KEY", None)
    return env


@contextmanager
def web_server(tmp_path: Path, *argv: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``autosre web --port 0`` in a subprocess, and the URL it printed; killed if still up."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "autosre.cli", "web", "--port", "0", *argv],
        cwd=ROOT,
        env=web_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.fullmatch(
            r"AutoSRE web UI on http://127\.0\.0\.1:\d+/ \(Ctrl-C stops it\)\n", line
        ), line + (proc.stderr.read() if proc.stderr and proc.poll() is not None else "")
        yield proc, line.split()[4]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                stream.close()


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_web_serves_and_stops_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    with web_server(tmp_path) as (proc, url):
        assert int(url.rsplit(":", 1)[1].rstrip("/")) > 0  # port 0: the port it got
        with urllib.request.urlopen(url + "healthz", timeout=10) as response:
            assert response.status == 200
        with urllib.request.urlopen(url + "login", timeout=10) as response:
            assert response.status == 200
            assert "default-src 'self'" in response.headers["Content-Security-Policy"]
            assert "Sign in" in response.read().decode()
        started = time.monotonic()
        proc.send_signal(sig)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - started < 5
        assert proc.stderr is not None
        err = proc.stderr.read()
        assert "web UI stopped" in err
        assert "Traceback" not in err
        for banner in ("development server", "Running on", "Serving on", "WARNING: This is"):
            assert banner not in err
    assert (tmp_path / "data" / "web_secret_key").stat().st_mode & 0o777 == 0o600


def test_cli_web_is_a_production_server(tmp_path: Path) -> None:
    with web_server(tmp_path) as (_proc, url):
        with urllib.request.urlopen(url + "healthz", timeout=10) as response:
            server = response.headers.get("Server", "")
        assert "Werkzeug" not in server
        assert "waitress" not in server.lower()
        assert not re.search(r"\d+\.\d+", server)  # no version to look up
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        # A 2 MiB body is refused before the app reads it (413), on the form and the API.
        for path in ("/login", "/api/incidents"):
            status, headers = _post_big(host, int(port), path, 2 * 1024 * 1024)
            assert status == 413, path
            assert "Werkzeug" not in headers.get("Server", "")


def _post_big(host: str, port: int, path: str, size: int) -> tuple[int, dict[str, str]]:
    """POST ``size`` bytes; the server may answer (and close) before it has read them all."""
    connection = http.client.HTTPConnection(host, port, timeout=10)
    try:
        connection.putrequest("POST", path)
        connection.putheader("Content-Type", "application/octet-stream")
        connection.putheader("Content-Length", str(size))
        connection.endheaders()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            chunk = b"x" * 65536
            for _ in range(size // len(chunk)):
                connection.send(chunk)
        response = connection.getresponse()
        response.read()
        return response.status, dict(response.getheaders())
    finally:
        connection.close()


def test_cli_web_reports_a_port_in_use(
    env: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, out, err = run(capsys, monkeypatch, "web", "--port", str(port))
    assert code == 2
    assert out == ""
    assert err == f"autosre: error: cannot listen on 127.0.0.1:{port}: the port is in use\n"


def test_cli_web_port_in_use_in_a_subprocess(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run(
            [sys.executable, "-m", "autosre.cli", "web", "--port", str(port)],
            cwd=ROOT,
            env=web_env(tmp_path),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 2
    assert done.stdout == ""
    assert f"cannot listen on 127.0.0.1:{port}: the port is in use" in done.stderr
    assert "Traceback" not in done.stderr


def test_secret_key_setting() -> None:
    key = "s" * 40
    settings = load_settings({"AUTOSRE_SECRET_KEY": key})
    assert settings.secret_key == key
    assert key not in repr(settings)
    assert key in settings.secrets  # redacted wherever the engine redacts secrets
    assert load_settings({}).secret_key is None
    with pytest.raises(SettingsError, match="AUTOSRE_SECRET_KEY: must be at least 32 characters"):
        load_settings({"AUTOSRE_SECRET_KEY": "too-short"})
