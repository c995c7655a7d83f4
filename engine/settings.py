"""Settings: one typed object built from the environment, in one place.

Nothing else in the package reads ``os.environ``.
"""

from __future__ import annotations

import ipaddress
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from urllib.parse import urlsplit

from engine.durations import parse_duration
from engine.errors import SettingsError
from engine.lease.owner import REPLICA_ID, default_replica_id
from engine.redact import redact_url, secrets_in_environment

PROJECT_ROOT = Path(__file__).resolve().parent.parent


PLANNERS = ("rules", "gemini", "openai")
EXECUTORS = ("ansible-runner", "awx")
DEFAULT_MODELS = {"gemini": "gemini-2.5-flash", "openai": "gpt-4o-mini"}
MIN_SECRET_KEY_LENGTH = 32  # a short key lets anyone forge a session cookie
# What every child process (Ansible, ansible-inventory) starts from; nothing else of
# the engine's environment reaches it unless an action names it (policy `env:`).
CHILD_ENV_NAMES = ("PATH", "HOME", "LANG", "LC_ALL", "LC_CTYPE", "TZ")
# The engine's own variables: they configure it or hold its keys, never a child's.
_ENGINE_OWN = re.compile(r"AUTOSRE_.*|GEMINI_API_KEY|OPENAI_API_KEY")


def is_engine_variable(name: str) -> bool:
    """True for the engine's own environment variables (AUTOSRE_*, the model keys)."""
    return bool(_ENGINE_OWN.fullmatch(name))


def child_environment(
    names: Iterable[str] = (), env: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The allow-listed environment for a child process: locale, home, PATH, and ``names``."""
    env = os.environ if env is None else env
    wanted = [*CHILD_ENV_NAMES, *(n for n in names if not is_engine_variable(n))]
    return {name: env[name] for name in wanted if name in env}


def _default_path(relative: str) -> Path:
    # An editable install (make setup) finds the shipped files beside the package;
    # elsewhere the current directory is the project.
    candidate = PROJECT_ROOT / relative
    return candidate if candidate.exists() else Path.cwd() / relative


@dataclass(frozen=True, slots=True)
class Settings:
    """Where things are and how often the engine ticks."""

    data_dir: Path
    database_url: str
    prometheus_url: str | None
    prometheus_timeout: float
    inventory: Path
    policy: Path
    playbook_dir: Path
    interval: float
    local_host: str | None
    log_level: str
    planner: str = "rules"
    llm_model: str | None = None
    llm_base_url: str | None = None
    llm_timeout: float = 10.0
    shutdown_grace: float = 30.0  # seconds a run in flight may finish after SIGTERM
    min_free_mb: int = 100  # no run starts with less free under runs_dir
    executor: str = "ansible-runner"  # or "awx": job templates on a controller
    awx_url: str | None = None
    awx_timeout: float = 10.0  # seconds per call to the controller
    replica_id: str = ""  # this engine among replicas on one PostgreSQL ("": machine + data dir)
    lease_ttl: float = 30.0  # seconds a replica's leases outlive its last heartbeat
    inventory_timeout: float | None = None  # ansible-inventory's limit (None: by its size)
    # Keys stay out of repr() so a logged or printed Settings never shows them.
    gemini_api_key: str | None = field(default=None, repr=False)
    openai_api_key: str | None = field(default=None, repr=False)
    # Signs the web UI's session cookies; None: a key generated once in the data dir.
    secret_key: str | None = field(default=None, repr=False)
    # AWX's OAuth2 token: from the environment only, never from a file or the policy.
    awx_token: str | None = field(default=None, repr=False)
    # Values of secret-named variables and URL passwords found in the environment.
    environment_secrets: frozenset[str] = field(default=frozenset(), repr=False)

    def __repr__(self) -> str:
        # A URL may carry a password: shown hidden, as the keys above are left out.
        shown = []
        for f in fields(self):
            if f.repr:
                value = getattr(self, f.name)
                value = redact_url(value) if isinstance(value, str) else value
                shown.append(f"{f.name}={value!r}")
        return f"Settings({', '.join(shown)})"

    @property
    def secrets(self) -> frozenset[str]:
        """Every secret value the engine knows, for redaction (never shown in repr)."""
        keys = (self.gemini_api_key, self.openai_api_key, self.secret_key, self.awx_token)
        urls = {
            "AUTOSRE_DATABASE_URL": self.database_url,
            "AUTOSRE_PROMETHEUS_URL": self.prometheus_url or "",
            "AUTOSRE_LLM_BASE_URL": self.llm_base_url or "",
            "AUTOSRE_AWX_URL": self.awx_url or "",
        }
        return (
            frozenset(k for k in keys if k)
            | frozenset(secrets_in_environment(urls))
            | self.environment_secrets
        )

    @property
    def runs_dir(self) -> Path:
        """Where each playbook run's private data dir and artifacts live."""
        return self.data_dir / "runs"

    @property
    def audit_log(self) -> Path:
        """The JSONL audit log: one line per recorded event."""
        return self.data_dir / "audit.jsonl"

    @property
    def facts_dir(self) -> Path:
        """Ansible's fact cache shared by every run (what a host is, learned once)."""
        return self.data_dir / "facts"

    @property
    def cache_dir(self) -> Path:
        """What is kept between starts to start faster (the parsed inventory)."""
        return self.data_dir / "cache"

    @property
    def locks_dir(self) -> Path:
        """Per-host lock files shared by the engine and the CLI."""
        return self.data_dir / "locks"


def _seconds(env: Mapping[str, str], name: str, default: float, minimum: float) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = parse_duration(raw)
    except ValueError as exc:
        raise SettingsError(name, str(exc)) from None
    if value < minimum:
        raise SettingsError(name, f"must be at least {minimum:g} seconds, got {raw!r}")
    return value


def _whole(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 9:
        raise SettingsError(name, f"must be a whole number from 0 up, got {raw!r}")
    return int(raw)


def _url(env: Mapping[str, str], name: str) -> str | None:
    raw = env.get(name, "").strip()
    if not raw:
        return None
    if not raw.startswith(("http://", "https://")):
        raise SettingsError(name, f"must be an http:// or https:// URL, got {raw!r}")
    return raw.rstrip("/")


def _secret_key(env: Mapping[str, str]) -> str | None:
    raw = env.get("AUTOSRE_SECRET_KEY") or None
    if raw is not None and len(raw) < MIN_SECRET_KEY_LENGTH:
        # The value itself stays out of the message: it is a secret, even when too short.
        raise SettingsError(
            "AUTOSRE_SECRET_KEY",
            f"must be at least {MIN_SECRET_KEY_LENGTH} characters, got {len(raw)}",
        )
    return raw


def _awx(env: Mapping[str, str]) -> tuple[str, str | None, str | None]:
    """The executor, and the controller's URL and token (required for "awx")."""
    executor = (env.get("AUTOSRE_EXECUTOR") or "ansible-runner").strip().lower()
    if executor not in EXECUTORS:
        raise SettingsError(
            "AUTOSRE_EXECUTOR", f"must be one of {', '.join(EXECUTORS)}, got {executor!r}"
        )
    url = _url(env, "AUTOSRE_AWX_URL")
    if url is not None:
        parts = urlsplit(url)
        if parts.username is not None or parts.password is not None:
            raise SettingsError(
                "AUTOSRE_AWX_URL", "must not hold credentials (the token is AUTOSRE_AWX_TOKEN)"
            )
        if parts.scheme == "http" and not _loopback(parts.hostname or ""):
            # The bearer token would cross the network in clear.
            raise SettingsError(
                "AUTOSRE_AWX_URL", f"must be https:// (plain http only to 127.0.0.1), got {url!r}"
            )
    token = env.get("AUTOSRE_AWX_TOKEN") or None
    if token is not None and (token != token.strip() or any(c.isspace() for c in token)):
        # The value stays out of the message: it is a secret.
        raise SettingsError("AUTOSRE_AWX_TOKEN", "must be one word, without spaces or newlines")
    if executor == "awx" and url is None:
        raise SettingsError("AUTOSRE_AWX_URL", "must be set when AUTOSRE_EXECUTOR=awx")
    if executor == "awx" and token is None:
        raise SettingsError("AUTOSRE_AWX_TOKEN", "must be set when AUTOSRE_EXECUTOR=awx")
    return executor, url, token


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def load_settings(env: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from the environment (or the mapping given), with documented defaults."""
    env = os.environ if env is None else env
    data_dir = Path(env.get("AUTOSRE_DATA_DIR") or Path.cwd() / "data").absolute()
    database_url = env.get("AUTOSRE_DATABASE_URL") or f"sqlite:///{data_dir / 'autosre.db'}"
    if "://" not in database_url:
        raise SettingsError("AUTOSRE_DATABASE_URL", "must be an SQLAlchemy URL like sqlite:///x.db")
    level = (env.get("AUTOSRE_LOG_LEVEL") or "INFO").upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR"}:
        raise SettingsError("AUTOSRE_LOG_LEVEL", "must be DEBUG, INFO, WARNING or ERROR")
    planner = (env.get("AUTOSRE_PLANNER") or "rules").strip().lower()
    if planner not in PLANNERS:
        raise SettingsError(
            "AUTOSRE_PLANNER", f"must be one of {', '.join(PLANNERS)}, got {planner!r}"
        )
    if planner == "gemini" and not env.get("GEMINI_API_KEY"):
        raise SettingsError("GEMINI_API_KEY", "must be set when AUTOSRE_PLANNER=gemini")
    if (
        planner == "openai"
        and not env.get("OPENAI_API_KEY")
        and not env.get("AUTOSRE_LLM_BASE_URL")
    ):
        raise SettingsError(
            "OPENAI_API_KEY", "must be set when AUTOSRE_PLANNER=openai without AUTOSRE_LLM_BASE_URL"
        )
    executor, awx_url, awx_token = _awx(env)
    replica_id = (env.get("AUTOSRE_REPLICA_ID") or "").strip()
    if replica_id and not REPLICA_ID.fullmatch(replica_id):
        raise SettingsError(
            "AUTOSRE_REPLICA_ID",
            f"must be letters, digits and ._:- (at most 100), got {replica_id!r}",
        )
    return Settings(
        replica_id=replica_id or default_replica_id(data_dir),
        lease_ttl=_seconds(env, "AUTOSRE_LEASE_TTL", 30.0, 1.0),
        inventory_timeout=_seconds(env, "AUTOSRE_INVENTORY_TIMEOUT", 0.0, 1.0) or None,
        executor=executor,
        awx_url=awx_url,
        awx_token=awx_token,
        awx_timeout=_seconds(env, "AUTOSRE_AWX_TIMEOUT", 10.0, 0.1),
        planner=planner,
        llm_model=(env.get("AUTOSRE_LLM_MODEL") or "").strip() or DEFAULT_MODELS.get(planner),
        llm_base_url=_url(env, "AUTOSRE_LLM_BASE_URL"),
        llm_timeout=_seconds(env, "AUTOSRE_LLM_TIMEOUT", 10.0, 0.1),
        gemini_api_key=env.get("GEMINI_API_KEY") or None,
        openai_api_key=env.get("OPENAI_API_KEY") or None,
        secret_key=_secret_key(env),
        data_dir=data_dir,
        database_url=database_url,
        prometheus_url=_url(env, "AUTOSRE_PROMETHEUS_URL"),
        prometheus_timeout=_seconds(env, "AUTOSRE_PROMETHEUS_TIMEOUT", 5.0, 0.1),
        inventory=Path(env.get("AUTOSRE_INVENTORY") or _default_path("inventory/localhost.yml")),
        policy=Path(env.get("AUTOSRE_POLICY") or _default_path("policies/default.yaml")),
        playbook_dir=Path(env.get("AUTOSRE_PLAYBOOK_DIR") or _default_path("playbooks")),
        interval=_seconds(env, "AUTOSRE_INTERVAL", 10.0, 0.2),
        shutdown_grace=_seconds(env, "AUTOSRE_SHUTDOWN_GRACE", 30.0, 0.0),
        min_free_mb=_whole(env, "AUTOSRE_MIN_FREE_MB", 100),
        local_host=env.get("AUTOSRE_LOCAL_HOST") or None,
        log_level=level,
        environment_secrets=frozenset(secrets_in_environment(env)),
    )


def environment_additions(env: Mapping[str, str]) -> dict[str, str]:
    """The entries of ``env`` that this process's environment does not hold as they are."""
    return {name: value for name, value in env.items() if os.environ.get(name) != value}
