"""The policy file's schema: typed, frozen pydantic models, every field checked.

Layout (version 2): ``signals`` (one section per signal kind of engine/signals.py: its
query, thresholds and remediation ladder), ``actions`` (the whitelist) and
``remediation`` (the deterministic limits that beat any planner). Version 1 files
(``detection.high_cpu`` and ``remediation.ladder``) are read through
engine/policy/layout.py.
"""

from __future__ import annotations

import re
from pathlib import Path
from string import Formatter
from typing import Annotated, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from engine.durations import format_duration, parse_duration
from engine.policy.hold_settings import Flapping, MaintenanceLimits
from engine.policy.notify_schema import Notifications
from engine.policy.push_schema import Alerts
from engine.policy.rate_limit_schema import RateLimits
from engine.policy.retention_schema import Retention
from engine.policy.trust import Trust
from engine.settings import is_engine_variable
from engine.signals import SIGNALS
from engine.types import DO_NOTHING_ACTION, ESCALATE_ACTION

ACTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
VAR_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
RESERVED_ACTIONS = frozenset({ESCALATE_ACTION, DO_NOTHING_ACTION})
# Ansible reserves these; letting an operator set them would bypass the inventory.
# autosre_* are the engine's own (a staged run's release file, say).
FORBIDDEN_VARS = re.compile(r"^(ansible_|autosre_|hostvars$|groups$|inventory_|playbook_dir$)")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
LAYOUT_VERSION = 2

Seconds = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignalRule(_Strict):
    """One signal kind's detection (with hysteresis) and its remediation ladder."""

    query: str
    label: str = "instance"
    trigger: float = Field(gt=0, le=100, description="above it counts as high")
    clear: float = Field(ge=0, lt=100, description="below it counts as cleared")
    window: Seconds = Field(ge=0.001, description="PromQL range for the rate")
    sustain: Seconds = Field(ge=0, description="high for this long before acting")
    step: Seconds = Field(gt=0, description="scrape interval / query resolution")
    stale_after: Seconds | None = Field(None, description="latest sample older than this: UNKNOWN")
    ladder: list[str] = Field(min_length=1, description="actions tried in order, then escalate")
    # Read without Prometheus (engine/metrics/local.py): the filesystem disk_full measures.
    path: str = Field("/", pattern=r"^/[^\x00]*$", description="absolute path, local reads only")

    @model_validator(mode="after")
    def _check(self) -> Self:
        if ".." in Path(self.path).parts:
            raise ValueError(f"path {self.path!r} must not contain '..'")
        if self.clear >= self.trigger:
            raise ValueError(f"clear ({self.clear}) must be below trigger ({self.trigger})")
        if self.stale_after is not None and self.stale_after < self.step:
            raise ValueError("stale_after must be at least one step")
        _check_placeholders(self.query)
        return self

    @property
    def promql(self) -> str:
        """The query with its range filled in."""
        return self.query.format(window=format_duration(self.window))

    @property
    def staleness(self) -> float:
        """How old the latest sample may be before the host is UNKNOWN."""
        return self.stale_after if self.stale_after is not None else 3 * self.step

    @property
    def lookback(self) -> float:
        """How much history one tick asks for: the sustain window and a few steps more."""
        return self.sustain + 3 * self.step


def _check_placeholders(query: str) -> None:
    """Allow exactly one kind of placeholder, ``{window}``: anything else is a mistake."""
    only = "query may only use the {window} placeholder"
    doubled = "(write literal braces doubled: {{ }})"
    try:
        parts = [(name, spec, conv) for _, name, spec, conv in Formatter().parse(query)]
    except ValueError as exc:
        raise ValueError(
            f"query may only use the {{window}} placeholder: {exc} {doubled}"
        ) from None
    for name, spec, conv in parts:
        if name is None and not spec and not conv:
            continue
        if name != "window":
            raise ValueError(
                f"query may only use the {{window}} placeholder, found {{{name}}} {doubled}"
            )
        if spec or conv:
            raise ValueError(f"{only}, without format spec or conversion")


class VarSpec(_Strict):
    """One extra var an operator or the engine may pass to a playbook."""

    pattern: str = Field(description="full-match regular expression the value must satisfy")
    description: str = ""
    secret: bool = False

    @field_validator("pattern")
    @classmethod
    def _compiles(cls, value: str) -> str:
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"not a valid regular expression: {exc}") from exc
        return value


class ActionSpec(_Strict):
    """A whitelisted action: a playbook, what it does, what vars it accepts."""

    playbook: str
    description: str
    vars: dict[str, VarSpec] = {}
    timeout: Seconds = Field(300.0, gt=0, le=86400)
    # Variables passed through from the engine's environment (SSH_AUTH_SOCK, say);
    # Ansible gets nothing else of it.
    env: list[str] = []
    # With AUTOSRE_EXECUTOR=awx: the job template that runs this action, by id or name.
    awx_job_template: int | str | None = None

    @field_validator("awx_job_template", mode="before")
    @classmethod
    def _template(cls, value: object) -> object:
        if isinstance(value, bool) or (isinstance(value, int) and value < 1):
            raise ValueError("must be a job template's id (a positive integer) or its name")
        if isinstance(value, str) and (not value.strip() or not value.isprintable()):
            raise ValueError("must be a job template's name: printable, not empty")
        return value

    @field_validator("playbook")
    @classmethod
    def _relative(cls, value: str) -> str:
        path = Path(value)
        if path.is_absolute() or ".." in path.parts or path.suffix not in {".yml", ".yaml"}:
            raise ValueError("must be a .yml file name relative to the playbook directory")
        return value

    @field_validator("vars")
    @classmethod
    def _var_names(cls, value: dict[str, VarSpec]) -> dict[str, VarSpec]:
        for name in value:
            if not VAR_NAME.match(name) or FORBIDDEN_VARS.match(name):
                raise ValueError(f"{name!r} is not an allowed variable name")
        return value

    @field_validator("env")
    @classmethod
    def _env_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not ENV_NAME.match(name):
                raise ValueError(f"{name!r} is not an environment variable name")
            if is_engine_variable(name):
                raise ValueError(f"{name!r} is the engine's own and never reaches a playbook")
        return value


class FailureMemory(_Strict):
    """Stop trying an action on a host that it keeps failing on."""

    window: Seconds = 86400.0
    max_failures: int = Field(2, ge=1)


class Remediation(_Strict):
    """Deterministic limits that beat any planner."""

    cooldown: Seconds = 600.0
    max_attempts: int = Field(3, ge=1, le=20)
    max_concurrent: int = Field(5, ge=1)
    # Of any inventory group, at most this share (and at least one host) at once.
    max_group_percent: float = Field(50.0, gt=0, le=100)
    auto_execute_confidence: float = Field(0.8, ge=0, le=1)
    # Between approval_confidence and auto_execute_confidence a human must approve;
    # below it the policy's low_confidence choice applies.
    approval_confidence: float = Field(0.5, ge=0, le=1)
    approval_timeout: Seconds = Field(900.0, gt=0)
    low_confidence: Literal["escalate", "do_nothing"] = "escalate"
    failure_memory: FailureMemory = FailureMemory()
    settle: Seconds | None = None
    verify_timeout: Seconds = 120.0
    # Start the first rung's read-only preflight while a rising signal fills its sustain
    # window, held at the playbook's release point until the verdict (engine/execute/
    # staging.py); only playbooks with a release point are ever staged.
    stage_runs: bool = True
    # Deterministic holds (engine/policy/suppress.py): flapping hosts, maintenance windows.
    flapping: Flapping = Flapping()
    maintenance: MaintenanceLimits = MaintenanceLimits()


class Policy(_Strict):
    """A whole policy file, validated (always in the current layout)."""

    version: int = Field(LAYOUT_VERSION, ge=LAYOUT_VERSION, le=LAYOUT_VERSION)
    signals: dict[str, SignalRule] = Field(min_length=1)
    actions: dict[str, ActionSpec] = Field(min_length=1)
    remediation: Remediation = Remediation()
    notifications: Notifications = Notifications()
    alerts: Alerts = Alerts()
    retention: Retention = Retention()
    rate_limits: RateLimits = ()  # after actions: its entries name them
    # The level per action (observe, propose, auto) and per group; unset: propose.
    trust: Trust = Trust()

    @field_validator("signals", mode="before")
    @classmethod
    def _known_kinds(cls, value: object) -> object:
        if not isinstance(value, dict):
            return value
        filled = {}
        for name, section in value.items():
            kind = SIGNALS.get(str(name))
            if kind is None:
                raise ValueError(f"unknown signal kind {name!r} (known: {', '.join(SIGNALS)})")
            # The kind's defaults under the file's own values.
            filled[name] = {**kind.defaults, **section} if isinstance(section, dict) else section
        return filled

    @field_validator("actions")
    @classmethod
    def _action_names(cls, value: dict[str, ActionSpec]) -> dict[str, ActionSpec]:
        for name in value:
            if name in RESERVED_ACTIONS or not ACTION_NAME.match(name):
                raise ValueError(f"{name!r} is not an allowed action name")
        return value

    def signal(self, kind: str) -> SignalRule:
        """The rule of one signal kind (KeyError if the policy does not watch it)."""
        return self.signals[kind]

    def cross_check(self) -> tuple[str, str] | None:
        """The first (field, reason) that relates two sections wrongly, or None."""
        for kind, rule in self.signals.items():
            for rung in rule.ladder:
                if rung not in self.actions:
                    return f"signals.{kind}.ladder", f"{rung!r} is not in actions"
        unknown = self.trust.unknown_action(self.actions)
        if unknown is not None:
            return unknown
        rem = self.remediation
        if rem.approval_confidence > rem.auto_execute_confidence:
            return "remediation.approval_confidence", (
                f"{rem.approval_confidence:g} is above auto_execute_confidence "
                f"{rem.auto_execute_confidence:g}"
            )
        for kind, rule in self.signals.items():
            floor = rule.step + rule.window
            if rem.settle is not None and rem.settle < floor:
                return "remediation.settle", (
                    f"{rem.settle:g}s is shorter than one step plus the query window ({floor:g}s) "
                    f"of {kind}: verification would read data from before the run"
                )
        return None

    def settle(self, kind: str) -> float:
        """Seconds after a run before its verification may read the kind's metrics."""
        rule = self.signals[kind]
        return self.remediation.settle or rule.step + rule.window
