"""Settings from an explicit environment mapping, and the duration parser they rely on."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from engine.durations import format_duration, parse_duration
from engine.errors import SettingsError
from engine.settings import PROJECT_ROOT, Settings, child_environment, load_settings

# -- settings --------------------------------------------------------------------


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    settings = load_settings({})
    assert isinstance(settings, Settings)
    assert settings.data_dir == tmp_path / "data"
    assert settings.data_dir.is_absolute()
    assert settings.database_url == f"sqlite:///{tmp_path / 'data' / 'autosre.db'}"
    assert settings.prometheus_url is None
    assert settings.prometheus_timeout == 5.0
    assert settings.interval == 10.0
    assert settings.local_host is None
    assert settings.log_level == "INFO"
    # The shipped files are found beside the (editable) package.
    assert settings.inventory == PROJECT_ROOT / "inventory/localhost.yml"
    assert settings.policy == PROJECT_ROOT / "policies/default.yaml"
    assert settings.playbook_dir == PROJECT_ROOT / "playbooks"
    assert settings.runs_dir == tmp_path / "data" / "runs"
    assert settings.audit_log == tmp_path / "data" / "audit.jsonl"
    assert settings.locks_dir == tmp_path / "data" / "locks"


def test_empty_values_mean_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    names = [
        "AUTOSRE_DATA_DIR",
        "AUTOSRE_DATABASE_URL",
        "AUTOSRE_PROMETHEUS_URL",
        "AUTOSRE_PROMETHEUS_TIMEOUT",
        "AUTOSRE_INVENTORY",
        "AUTOSRE_POLICY",
        "AUTOSRE_PLAYBOOK_DIR",
        "AUTOSRE_INTERVAL",
        "AUTOSRE_LOCAL_HOST",
        "AUTOSRE_LOG_LEVEL",
    ]
    assert load_settings(dict.fromkeys(names, "")) == load_settings({})


def test_explicit_env_is_used_not_os_environ(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOSRE_INTERVAL", "abc")
    monkeypatch.setenv("AUTOSRE_LOG_LEVEL", "nope")
    assert load_settings({}).interval == 10.0


def test_os_environ_is_the_default_source(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUTOSRE_INTERVAL", "2s")
    assert load_settings().interval == 2.0


def test_data_dir(tmp_path: Path) -> None:
    settings = load_settings({"AUTOSRE_DATA_DIR": str(tmp_path / "d")})
    assert settings.data_dir == tmp_path / "d"
    assert settings.database_url == f"sqlite:///{tmp_path / 'd' / 'autosre.db'}"
    assert settings.audit_log == tmp_path / "d" / "audit.jsonl"


def test_relative_data_dir_is_made_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_settings({"AUTOSRE_DATA_DIR": "state"}).data_dir == tmp_path / "state"


def test_database_url() -> None:
    url = "postgresql+psycopg://autosre@db:5432/autosre"
    assert load_settings({"AUTOSRE_DATABASE_URL": url}).database_url == url


def test_database_url_must_be_a_url() -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"AUTOSRE_DATABASE_URL": "autosre.db"})
    assert caught.value.variable == "AUTOSRE_DATABASE_URL"
    assert str(caught.value).startswith("AUTOSRE_DATABASE_URL: ")


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://127.0.0.1:9090", "http://127.0.0.1:9090"),
        ("https://prom.example/", "https://prom.example"),
        ("  http://prom:9090//  ", "http://prom:9090"),
    ],
)
def test_prometheus_url(raw: str, expected: str) -> None:
    assert load_settings({"AUTOSRE_PROMETHEUS_URL": raw}).prometheus_url == expected


@pytest.mark.parametrize("raw", ["ftp://x", "prometheus:9090", "file:///etc/passwd"])
def test_bad_prometheus_url(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"AUTOSRE_PROMETHEUS_URL": raw})
    assert caught.value.variable == "AUTOSRE_PROMETHEUS_URL"
    assert "AUTOSRE_PROMETHEUS_URL" in str(caught.value)
    assert repr(raw) in str(caught.value)


def test_prometheus_timeout() -> None:
    assert load_settings({"AUTOSRE_PROMETHEUS_TIMEOUT": "1500ms"}).prometheus_timeout == 1.5


@pytest.mark.parametrize("raw", ["0", "50ms", "soon"])
def test_bad_prometheus_timeout(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"AUTOSRE_PROMETHEUS_TIMEOUT": raw})
    assert caught.value.variable == "AUTOSRE_PROMETHEUS_TIMEOUT"


def test_paths(tmp_path: Path) -> None:
    settings = load_settings(
        {
            "AUTOSRE_INVENTORY": str(tmp_path / "inv.yml"),
            "AUTOSRE_POLICY": str(tmp_path / "p.yaml"),
            "AUTOSRE_PLAYBOOK_DIR": str(tmp_path / "pb"),
        }
    )
    assert settings.inventory == tmp_path / "inv.yml"
    assert settings.policy == tmp_path / "p.yaml"
    assert settings.playbook_dir == tmp_path / "pb"


@pytest.mark.parametrize(
    ("raw", "expected"), [("1", 1.0), ("2.5", 2.5), ("200ms", 0.2), ("1m", 60)]
)
def test_interval(raw: str, expected: float) -> None:
    assert load_settings({"AUTOSRE_INTERVAL": raw}).interval == expected


@pytest.mark.parametrize("raw", ["abc", "0", "-1", "100ms", "10x", "1 day"])
def test_bad_interval(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"AUTOSRE_INTERVAL": raw})
    assert caught.value.variable == "AUTOSRE_INTERVAL"
    assert str(caught.value).startswith("AUTOSRE_INTERVAL: ")


def test_local_host() -> None:
    assert load_settings({"AUTOSRE_LOCAL_HOST": "web1"}).local_host == "web1"


@pytest.mark.parametrize(
    ("raw", "expected"), [("debug", "DEBUG"), ("Info", "INFO"), ("WARNING", "WARNING")]
)
def test_log_level(raw: str, expected: str) -> None:
    assert load_settings({"AUTOSRE_LOG_LEVEL": raw}).log_level == expected


@pytest.mark.parametrize("raw", ["TRACE", "WARN", "CRITICAL", "10"])
def test_bad_log_level(raw: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings({"AUTOSRE_LOG_LEVEL": raw})
    assert caught.value.variable == "AUTOSRE_LOG_LEVEL"
    assert "DEBUG, INFO, WARNING or ERROR" in str(caught.value)


def test_settings_error_is_a_value_error() -> None:
    assert issubclass(SettingsError, ValueError)


# -- durations -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("500ms", 0.5),
        ("10s", 10.0),
        ("10", 10.0),
        ("1.5", 1.5),
        ("5m", 300.0),
        ("1h", 3600.0),
        ("2d", 172800.0),
        (" 3 s ", 3.0),
        ("0", 0.0),
        (7, 7.0),
        (2.5, 2.5),
        (0, 0.0),
    ],
)
def test_parse_duration(value: object, seconds: float) -> None:
    parsed = parse_duration(value)
    assert isinstance(parsed, float)
    assert parsed == seconds


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        -1,
        -0.5,
        "-1s",
        math.nan,
        math.inf,
        "nan",
        "inf",
        "10x",
        "s",
        "",
        "1e3",
        "5 minutes",
        "1m30s",
        None,
        [10],
    ],
)
def test_parse_duration_refuses(value: object) -> None:
    with pytest.raises(ValueError, match="duration"):
        parse_duration(value)


def test_parse_duration_names_the_value() -> None:
    with pytest.raises(ValueError, match="'10x'"):
        parse_duration("10x")
    with pytest.raises(ValueError, match="True"):
        parse_duration(True)
    with pytest.raises(ValueError, match="list"):
        parse_duration([1])


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.5, "500ms"),
        (1.5, "1500ms"),
        (1.0, "1s"),
        (15.0, "15s"),
        (59.0, "59s"),
        (60.0, "1m"),
        (90.0, "90s"),
        (300.0, "5m"),
        (3600.0, "60m"),
        (0.0, "0s"),
    ],
)
def test_format_duration(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text


@pytest.mark.parametrize("text", ["250ms", "3s", "90s", "5m", "2h", "1d"])
def test_round_trip(text: str) -> None:
    assert parse_duration(format_duration(parse_duration(text))) == parse_duration(text)


# -- secrets ---------------------------------------------------------------------


def test_secrets_come_from_keys_secret_names_and_url_passwords() -> None:
    settings = load_settings(
        {
            "GEMINI_API_KEY": "gemini-k-1",
            "AUTOSRE_SECRET_KEY": "s" * 40,
            "AUTOSRE_PROMETHEUS_URL": "http://user:prom-pw-2@127.0.0.1:9090",
            "AUTOSRE_DATABASE_URL": "postgresql+psycopg://app:db-pw-3@127.0.0.1/x",
            "SOME_SERVICE_TOKEN": "svc-tok-4",
            "HOME": "/root",
        }
    )
    assert settings.secrets == {"gemini-k-1", "s" * 40, "prom-pw-2", "db-pw-3", "svc-tok-4"}
    shown = repr(settings)
    for secret in settings.secrets:
        assert secret not in shown
    assert "user:********@127.0.0.1:9090" in shown


def test_settings_built_directly_still_know_their_url_passwords(tmp_path: Path) -> None:
    settings = Settings(
        data_dir=tmp_path,
        database_url="postgresql://app:direct-pw-5@db/x",
        prometheus_url=None,
        prometheus_timeout=5.0,
        inventory=tmp_path / "i.yml",
        policy=tmp_path / "p.yaml",
        playbook_dir=tmp_path,
        interval=10.0,
        local_host=None,
        log_level="INFO",
    )
    assert settings.secrets == {"direct-pw-5"}


def test_child_environment_is_an_allow_list() -> None:
    env = {
        "PATH": "/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "GEMINI_API_KEY": "k",
        "AUTOSRE_SECRET_KEY": "s",
        "SSH_AUTH_SOCK": "/run/agent",
        "OTHER": "x",
    }
    assert child_environment(env=env) == {"PATH": "/bin", "HOME": "/root", "LANG": "C.UTF-8"}
    named = child_environment(["SSH_AUTH_SOCK", "AUTOSRE_SECRET_KEY", "MISSING"], env=env)
    assert named == {
        "PATH": "/bin",
        "HOME": "/root",
        "LANG": "C.UTF-8",
        "SSH_AUTH_SOCK": "/run/agent",
    }


# -- the AWX executor ------------------------------------------------------------

AWX = {"AUTOSRE_EXECUTOR": "awx", "AUTOSRE_AWX_TOKEN": "awx-token-0123456789abcdef"}


def test_executor_defaults_to_ansible_runner() -> None:
    settings = load_settings({})
    assert (settings.executor, settings.awx_url, settings.awx_token) == (
        "ansible-runner",
        None,
        None,
    )
    assert settings.awx_timeout == 10.0


@pytest.mark.parametrize(
    "url", ["https://awx.example.com", "https://awx.example.com:8443/", "http://127.0.0.1:8052"]
)
def test_awx_settings(url: str) -> None:
    settings = load_settings({**AWX, "AUTOSRE_AWX_URL": url, "AUTOSRE_AWX_TIMEOUT": "3s"})
    assert settings.executor == "awx"
    assert settings.awx_url == url.rstrip("/")
    assert settings.awx_timeout == 3.0
    # The token is a secret: redacted everywhere, never shown.
    assert AWX["AUTOSRE_AWX_TOKEN"] in settings.secrets
    assert AWX["AUTOSRE_AWX_TOKEN"] not in repr(settings)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"AUTOSRE_EXECUTOR": "tower"}, "AUTOSRE_EXECUTOR"),
        ({**AWX}, "AUTOSRE_AWX_URL"),
        ({"AUTOSRE_EXECUTOR": "awx", "AUTOSRE_AWX_URL": "https://awx"}, "AUTOSRE_AWX_TOKEN"),
        ({**AWX, "AUTOSRE_AWX_URL": "http://awx.example.com"}, "AUTOSRE_AWX_URL"),
        ({**AWX, "AUTOSRE_AWX_URL": "ftp://awx.example.com"}, "AUTOSRE_AWX_URL"),
        ({**AWX, "AUTOSRE_AWX_URL": "https://u:pw@awx.example.com"}, "AUTOSRE_AWX_URL"),
        (
            {**AWX, "AUTOSRE_AWX_URL": "https://awx", "AUTOSRE_AWX_TIMEOUT": "0"},
            "AUTOSRE_AWX_TIMEOUT",
        ),
        (
            {**AWX, "AUTOSRE_AWX_URL": "https://awx", "AUTOSRE_AWX_TIMEOUT": "x"},
            "AUTOSRE_AWX_TIMEOUT",
        ),
        (
            {**AWX, "AUTOSRE_AWX_URL": "https://awx", "AUTOSRE_AWX_TOKEN": "a b"},
            "AUTOSRE_AWX_TOKEN",
        ),
    ],
)
def test_bad_awx_settings_name_the_variable(env: dict[str, str], variable: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_settings(env)
    assert caught.value.variable == variable
    assert AWX["AUTOSRE_AWX_TOKEN"] not in str(caught.value)


def test_bad_awx_setting_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from autosre.cli import main

    monkeypatch.setenv("AUTOSRE_EXECUTOR", "awx")
    monkeypatch.setenv("AUTOSRE_AWX_URL", "http://awx.example.com")
    monkeypatch.setenv("AUTOSRE_AWX_TOKEN", "awx-token-0123456789abcdef")
    assert main(["incidents", "list"]) == 2
    err = capsys.readouterr().err
    assert "AUTOSRE_AWX_URL" in err and "https" in err and "Traceback" not in err


@pytest.mark.parametrize(
    "hostile", ["r1\nAUTOSRE_X=1", "r1; rm -rf /", "../r1", "\x1b[31mr1", "r" * 101, "-r1"]
)
def test_a_replica_id_that_is_not_a_plain_name_is_refused(hostile: str) -> None:
    """It ends up in logs, /healthz and lease owners: no newlines, escapes or paths."""
    with pytest.raises(SettingsError) as refused:
        load_settings({"AUTOSRE_REPLICA_ID": hostile})
    assert "AUTOSRE_REPLICA_ID" in str(refused.value)
    assert "\n" not in str(refused.value).replace("\\n", "")


def test_the_default_replica_id_is_stable_and_differs_per_data_dir(tmp_path: Path) -> None:
    one = load_settings({"AUTOSRE_DATA_DIR": str(tmp_path / "a")}).replica_id
    assert one == load_settings({"AUTOSRE_DATA_DIR": str(tmp_path / "a")}).replica_id
    assert one != load_settings({"AUTOSRE_DATA_DIR": str(tmp_path / "b")}).replica_id
