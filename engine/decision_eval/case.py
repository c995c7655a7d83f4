"""The case format: one situation (samples or state, history, holds, fleet, labels, policy)
and the decision it calls for. YAML, validated strictly; errors name the file and field.

A file holds one case (a mapping) or several (``cases: [...]``). Times are relative to the
case's ``now``, so a case reads the same whenever it runs.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Self

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

from engine.durations import parse_duration
from engine.errors import InputError
from engine.signals import SIGNALS
from engine.types import HostStatus

Seconds = Annotated[float, BeforeValidator(parse_duration)]
TODO = "TODO"  # a captured case's expected decision, until a person fills it in
NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,79}$")
ANSWER = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
MAX_FILE_BYTES = 1_000_000
MAX_CASES_PER_FILE = 1000
# Policy settings in a case are shallow on purpose: YAML aliases can nest one value many
# times over, and a deep Any would be walked (and copied) exponentially.
Scalar = str | int | float | bool | None
Setting = Scalar | dict[str, Scalar]
NOW = 1_800_000_000.0  # a fixed clock for written cases (2027-01-15)


class CaseError(InputError):
    """A case file that cannot be used; the message names the file, the case and the field."""


class _Strict(BaseModel):
    # No inf or NaN anywhere: a time or a value that is not a number breaks every comparison.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class Series(_Strict):
    """The host's samples of the case's signal kind, evenly spaced (``values``, or ``runs`` of
    [value, count]: ``[[30, 6], [95, 20]]`` is six 30s then twenty 95s), or explicit points."""

    every: Seconds = Field(15.0, gt=0)
    age: Seconds = Field(5.0, ge=0, description="how old the latest sample is")
    values: list[float] = Field(default_factory=list, max_length=2000)
    runs: list[tuple[float, Annotated[int, Field(ge=1, le=2000)]]] = Field(
        default_factory=list, max_length=100
    )
    points: list[tuple[float, float]] = Field(
        default_factory=list, max_length=2000, description="[seconds_ago, value] pairs"
    )

    @model_validator(mode="after")
    def _one(self) -> Self:
        if sum(map(bool, (self.values, self.runs, self.points))) != 1:
            raise ValueError("give one of values, runs or points")
        if sum(count for _, count in self.runs) > 2000:
            raise ValueError("runs: more than 2000 samples")
        if any(ago < 0 for ago, _ in self.points):
            raise ValueError("points: seconds_ago must not be negative")
        return self

    def timed(self, now: float) -> list[tuple[float, float]]:
        """(timestamp, value) pairs, oldest first."""
        if self.points:
            return sorted((now - ago, value) for ago, value in self.points)
        values = self.values or [value for value, count in self.runs for _ in range(count)]
        last = now - self.age
        count = len(values)
        return [(last - (count - 1 - i) * self.every, v) for i, v in enumerate(values)]


class StateSpec(_Strict):
    """The host's state when the samples are not known (a captured case): used as is."""

    status: HostStatus
    value: float | None = None
    for_seconds: float = Field(0.0, ge=0)
    reason: str = Field("", max_length=2000)


class PastRun(_Strict):
    """One earlier remediation on the host."""

    action: str = Field(pattern=ANSWER.pattern)
    minutes_ago: float = Field(ge=0, description="when it started")
    took_minutes: float | None = Field(1.0, ge=0, description="null: still running")
    cured: bool | None = None  # None: not known (yet)
    same_incident: bool = False


class Hold(_Strict):
    """A maintenance window over the host (or one of its groups)."""

    reason: str = Field(min_length=1, max_length=500)
    set_by: str = "eval"
    group: str | None = None
    started_minutes_ago: float = Field(10.0, ge=0)
    ends_in_minutes: float = Field(60.0, gt=0)


class TakenOut(_Strict):
    """The host was taken out of automatic remediation (flapping)."""

    minutes_ago: float = Field(ge=0)
    reason: str = ""


class PolicyRef(_Strict):
    """A shipped policy (``default``, ``lab``) or a file beside the case, with an excerpt."""

    base: str = Field("default", min_length=1, max_length=1000)
    whitelist: list[str] | None = Field(None, max_length=100, description="keep only these")
    remediation: dict[str, Setting] = Field(default_factory=dict, max_length=50)
    signals: dict[str, dict[str, Scalar | list[str]]] = Field(default_factory=dict, max_length=10)


class Scenario(_Strict):
    """What the engine knew at one decision point about one host."""

    policy: PolicyRef = PolicyRef()
    kind: str = "high_cpu"
    host: str = Field("web1", min_length=1, max_length=255)
    groups: list[str] = Field(default_factory=list, max_length=100)
    labels: dict[str, str] = Field(default_factory=dict, max_length=100)
    samples: Series | None = None
    state: StateSpec | None = None
    fleet: dict[HostStatus, int] = Field(default_factory=dict)
    tried: list[str] = Field(default_factory=list, max_length=20)
    history: list[PastRun] = Field(default_factory=list, max_length=1000)
    remediating_hosts: int = Field(0, ge=0)
    maintenance: list[Hold] = Field(default_factory=list, max_length=100)
    taken_out: TakenOut | None = None
    now: float = Field(NOW, gt=0, lt=1e11)
    missing: list[str] = Field(default_factory=list, max_length=20, description="not recorded")

    @model_validator(mode="before")
    @classmethod
    def _policy_name(cls, data: Any) -> Any:
        # ``policy: lab`` is short for ``policy: {base: lab}``.
        if isinstance(data, dict) and isinstance(data.get("policy"), str):
            return {**data, "policy": {"base": data["policy"]}}
        return data

    @model_validator(mode="after")
    def _check(self) -> Self:
        if self.kind not in SIGNALS:
            raise ValueError(
                f"kind: unknown signal kind {self.kind!r} (known: {', '.join(SIGNALS)})"
            )
        if self.samples is None and self.state is None:
            raise ValueError("give the host's samples, or its state")
        return self


class Expect(_Strict):
    """The decision the situation calls for, and answers that must never be given."""

    decision: str = Field(min_length=1, max_length=64)
    forbidden: list[str] = Field(default_factory=list, max_length=100)

    @field_validator("decision")
    @classmethod
    def _filled(cls, value: str) -> str:
        if value.strip().upper().startswith(TODO):
            raise ValueError(
                "still TODO: write the right decision (an action, escalate or do_nothing) "
                "before the case can be used"
            )
        if not ANSWER.match(value):
            raise ValueError(f"{value!r} is not an action name")
        return value

    @field_validator("forbidden")
    @classmethod
    def _names(cls, value: list[str]) -> list[str]:
        for answer in value:
            if not ANSWER.match(answer):
                raise ValueError(f"{answer!r} is not an action name")
        return value

    @model_validator(mode="after")
    def _apart(self) -> Self:
        if self.decision in self.forbidden:
            raise ValueError(f"{self.decision!r} is both expected and forbidden")
        return self


class Case(Scenario):
    """A scenario with its expected decision: one line of the eval's score."""

    name: str = Field(pattern=NAME.pattern)
    description: str = Field("", max_length=2000)
    expect: Expect
    control: bool = False  # a no-fault control: the right answer is to do nothing


def _where(loc: tuple[Any, ...]) -> str:
    return ".".join(str(part) for part in loc) or "(top level)"


def parse_case(data: object, *, source: str) -> Case:
    """Validate one case's data; CaseError naming the source and the field."""
    try:
        return Case.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        reason = str(first["msg"]).removeprefix("Value error, ")
        raise CaseError(f"{source}: {_where(tuple(first['loc']))}: {reason}") from None


def read_case_file(path: Path) -> list[Case]:
    """The cases of one YAML file (one mapping, or ``cases:`` holding a list)."""
    try:
        if path.stat().st_size > MAX_FILE_BYTES:
            raise CaseError(f"{path}: larger than {MAX_FILE_BYTES} bytes")
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise CaseError(f"{path}: cannot read: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CaseError(f"{path}: not UTF-8 text") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark is not None else ""
        raise CaseError(f"{path}: not valid YAML{where}") from None
    if isinstance(data, dict) and set(data) == {"cases"} and isinstance(data["cases"], list):
        items = data["cases"]
        if len(items) > MAX_CASES_PER_FILE:
            raise CaseError(f"{path}: cases: more than {MAX_CASES_PER_FILE} in one file")
        return [parse_case(item, source=f"{path}: cases[{i}]") for i, item in enumerate(items)]
    return [parse_case(data, source=str(path))]


def load_cases(*places: Path) -> list[tuple[Path, Case]]:
    """Every case in these files and directories (``*.yaml``, sorted), each with its file.

    Names must be unique across them all: a score names cases by name."""
    found: list[tuple[Path, Case]] = []
    for place in places:
        if place.is_dir():
            files = sorted([*place.glob("*.yaml"), *place.glob("*.yml")])
            if not files:
                raise CaseError(f"{place}: no *.yaml case files")
        elif place.is_file():
            files = [place]
        else:
            raise CaseError(f"{place}: no such file or directory")
        found.extend((file, case) for file in files for case in read_case_file(file))
    seen: dict[str, Path] = {}
    for file, case in found:
        if case.name in seen:
            raise CaseError(f"{file}: name: {case.name!r} is already used in {seen[case.name]}")
        seen[case.name] = file
    return found


def shipped_corpus() -> Path:
    """The directory of the cases shipped with AutoSRE."""
    return Path(__file__).resolve().parent / "corpus"
