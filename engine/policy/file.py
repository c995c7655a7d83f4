"""Load and validate a policy YAML file into a typed, frozen ``Policy``.

The file is untrusted input: every field is checked, unknown fields are refused,
and errors name the file, the field and the reason (``PolicyError``).
"""

from __future__ import annotations

import re
import string
from functools import cache
from pathlib import Path
from string import Formatter
from typing import Annotated, Any, Literal, Self

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from engine.durations import format_duration, parse_duration
from engine.errors import PolicyError
from engine.settings import is_engine_variable
from engine.types import DO_NOTHING_ACTION, ESCALATE_ACTION

ACTION_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
VAR_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,63}$")
RESERVED_ACTIONS = frozenset({ESCALATE_ACTION, DO_NOTHING_ACTION})
# Ansible reserves these; letting an operator set them would bypass the inventory.
FORBIDDEN_VARS = re.compile(r"^(ansible_|hostvars$|groups$|inventory_|playbook_dir$)")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
# Text that Jinja would run if Ansible templated a value (it does not: values are
# passed marked unsafe), probed against each var's pattern by template_warnings().
TEMPLATE_TOKENS = ("{{", "{%", "lookup(")
_PADDING = string.ascii_letters + string.digits + string.punctuation + " "
_PAD_LENGTHS = (0, 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64, 128, 256)

Seconds = Annotated[float, BeforeValidator(parse_duration)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class HighCpuRule(_Strict):
    """Detection of sustained high CPU, with hysteresis."""

    query: str = (
        '100 * (1 - avg by (instance) (irate(node_cpu_seconds_total{{mode="idle"}}[{window}])))'
    )
    label: str = "instance"
    trigger: float = Field(80.0, gt=0, le=100, description="percent; above it counts as high")
    clear: float = Field(60.0, ge=0, lt=100, description="percent; below it counts as cleared")
    window: Seconds = Field(30.0, ge=0.001, description="PromQL range for the rate")
    sustain: Seconds = Field(300.0, ge=0, description="high for this long before acting")
    step: Seconds = Field(15.0, gt=0, description="scrape interval / query resolution")
    stale_after: Seconds | None = Field(None, description="latest sample older than this: UNKNOWN")

    @model_validator(mode="after")
    def _check(self) -> Self:
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


def _check_placeholders(query: str) -> None:
    """Allow exactly one kind of placeholder, ``{window}``: anything else is a mistake."""
    try:
        fields = [
            name
            for _, name, spec, conv in Formatter().parse(query)
            if name is not None or spec or conv
        ]
    except ValueError as exc:
        raise ValueError(
            f"query may only use the {{window}} placeholder: {exc} "
            "(write literal braces doubled: {{ }})"
        ) from None
    stray = [name for name in fields if name != "window"]
    if stray:
        raise ValueError(
            f"query may only use the {{window}} placeholder, found {{{stray[0]}}} "
            "(write literal braces doubled: {{ }})"
        )
    for _, name, spec, conv in Formatter().parse(query):
        if name == "window" and (spec or conv):
            raise ValueError(
                "query may only use the {window} placeholder, without format spec or conversion"
            )


class Detection(_Strict):
    """What counts as an anomaly."""

    high_cpu: HighCpuRule = HighCpuRule()


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

    ladder: list[str] = Field(min_length=1)
    cooldown: Seconds = 600.0
    max_attempts: int = Field(3, ge=1, le=20)
    max_concurrent: int = Field(5, ge=1)
    auto_execute_confidence: float = Field(0.8, ge=0, le=1)
    # Between approval_confidence and auto_execute_confidence a human must approve;
    # below it the policy's low_confidence choice applies.
    approval_confidence: float = Field(0.5, ge=0, le=1)
    approval_timeout: Seconds = Field(900.0, gt=0)
    low_confidence: Literal["escalate", "do_nothing"] = "escalate"
    failure_memory: FailureMemory = FailureMemory()
    settle: Seconds | None = None
    verify_timeout: Seconds = 120.0


class Policy(_Strict):
    """A whole policy file, validated."""

    version: int = Field(1, ge=1, le=1)
    detection: Detection = Detection()
    actions: dict[str, ActionSpec] = Field(min_length=1)
    remediation: Remediation

    @field_validator("actions")
    @classmethod
    def _action_names(cls, value: dict[str, ActionSpec]) -> dict[str, ActionSpec]:
        for name in value:
            if name in RESERVED_ACTIONS or not ACTION_NAME.match(name):
                raise ValueError(f"{name!r} is not an allowed action name")
        return value

    def cross_check(self) -> tuple[str, str] | None:
        """The first (field, reason) that relates two sections wrongly, or None."""
        rule = self.detection.high_cpu
        for rung in self.remediation.ladder:
            if rung not in self.actions:
                return "remediation.ladder", f"{rung!r} is not in actions"
        rem = self.remediation
        if rem.approval_confidence > rem.auto_execute_confidence:
            return "remediation.approval_confidence", (
                f"{rem.approval_confidence:g} is above auto_execute_confidence "
                f"{rem.auto_execute_confidence:g}"
            )
        floor = rule.step + rule.window
        settle = self.remediation.settle
        if settle is not None and settle < floor:
            return "remediation.settle", (
                f"{settle:g}s is shorter than one step plus the query window ({floor:g}s): "
                "verification would read data from before the run"
            )
        return None

    @property
    def settle(self) -> float:
        """Seconds after a run before its verification may read metrics."""
        rule = self.detection.high_cpu
        return self.remediation.settle or rule.step + rule.window


def _field_path(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def parse_policy(data: object, *, source: str = "<policy>") -> Policy:
    """Validate already-loaded YAML data as a policy; raise PolicyError on the first problem."""
    if not isinstance(data, dict):
        raise PolicyError(source, "", "the file must hold a mapping (key: value) at the top")
    try:
        policy = Policy.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = str(first["msg"]).removeprefix("Value error, ")
        raise PolicyError(source, _field_path(tuple(first["loc"])), reason) from None
    problem = policy.cross_check()
    if problem is not None:
        raise PolicyError(source, *problem)
    return policy


def load_policy(path: Path, *, playbook_dir: Path | None = None) -> Policy:
    """Read, parse and validate a policy file; check its playbooks exist in playbook_dir."""
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyError(source, "", f"cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise PolicyError(source, "", "not UTF-8 text") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise PolicyError(source, "", f"not valid YAML{where}") from None
    policy = parse_policy(data, source=source)
    if playbook_dir is not None:
        for name, action in policy.actions.items():
            if not (playbook_dir / action.playbook).is_file():
                raise PolicyError(
                    source,
                    f"actions.{name}.playbook",
                    f"{action.playbook} not found in {playbook_dir}",
                )
    return policy


def template_warnings(policy: Policy) -> list[str]:
    """One warning per var whose pattern admits Jinja syntax ({{, {% or lookup()."""
    warnings = []
    for action_name, action in policy.actions.items():
        for var_name, var in action.vars.items():
            example = _admitted_template(re.compile(var.pattern))
            if example is not None:
                warnings.append(
                    f"actions.{action_name}.vars.{var_name}: pattern {var.pattern!r} admits "
                    f"template text such as {example!r}; the value reaches Ansible marked "
                    "unsafe (never templated), but a playbook that templates it again would "
                    "run it: prefer a tighter pattern"
                )
    return warnings


def _admitted_template(pattern: re.Pattern[str]) -> str | None:
    for candidate in _template_candidates():
        if pattern.fullmatch(candidate):
            return candidate
    return None


@cache
def _template_candidates() -> tuple[str, ...]:
    """Strings holding a template token, padded on either side to lengths a pattern may want."""
    found = ["{{ 7*7 }}", "{% if x %}y{% endif %}", "{{ lookup('pipe','id') }}"]
    for token in TEMPLATE_TOKENS:
        for pad in _PADDING:
            for length in _PAD_LENGTHS:
                padding = pad * length
                found += [token + padding, padding + token]
                half = padding[: length // 2]
                found.append(half + token + padding[len(half) :])
    return tuple(dict.fromkeys(found))
