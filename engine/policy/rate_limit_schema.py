"""The policy's ``rate_limits:`` section: at most so many runs within a sliding window.

    rate_limits:
      - {scope: host, action: restart_nginx, max: 3, per: 1h}   # on each host
      - {scope: host, action: restart_nginx, max: 10, per: 1d}
      - {scope: action, action: rollback_nginx, max: 5, per: 1h}  # all hosts together
      - {scope: fleet, max: 20, per: 10m}                         # every action, every host

A ``host`` limit without an action counts every action on the host. Counting is
engine/policy/rate_limits.py; no section means no limit.
"""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)

from engine.durations import parse_duration

# Runs are read back from the store over the longest window: keep that bounded.
MAX_WINDOW = 31 * 86400.0

Seconds = Annotated[float, BeforeValidator(parse_duration)]
Scope = Literal["host", "action", "fleet"]


class RateLimit(BaseModel):
    """At most ``max`` runs within any ``per`` seconds, counted over the scope."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    scope: Scope
    action: str | None = None
    max: int = Field(ge=1, le=100_000, strict=True)  # `max: true` is a mistake, not 1
    per: Seconds = Field(ge=1, le=MAX_WINDOW, description="the sliding window, 1s to 31d")

    @model_validator(mode="after")
    def _action_fits_scope(self) -> Self:
        if self.scope == "action" and self.action is None:
            raise ValueError("a scope: action limit needs the action it counts")
        if self.scope == "fleet" and self.action is not None:
            raise ValueError("a fleet limit counts every action: use scope: action for one action")
        return self

    def applies_to(self, action: str) -> bool:
        """True if a run of this action counts toward the limit."""
        return self.action is None or self.action == action

    def describe(self) -> str:
        """The limit in a few words: 'restart_nginx on each host, 3 per 1h'."""
        what = self.action or "every action"
        where = {"host": "each host", "action": "all hosts", "fleet": "the fleet"}[self.scope]
        return f"{what} on {where}, {self.max} per {window_text(self.per)}"


def window_text(seconds: float) -> str:
    """A window the way a policy writes it: 1d, 1h, 10m, 90s."""
    whole = round(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if whole >= size and whole % size == 0:
            return f"{whole // size}{unit}"
    return f"{seconds:g}s"


def _checked(limits: tuple[RateLimit, ...], info: ValidationInfo) -> tuple[RateLimit, ...]:
    """Every action named must be whitelisted; no two entries may count the same thing."""
    actions = info.data.get("actions")  # absent when the actions section itself is invalid
    seen: dict[tuple[str, str | None, float], int] = {}
    for index, limit in enumerate(limits):
        if actions is not None and limit.action is not None and limit.action not in actions:
            raise ValueError(f"entry {index}: unknown action {limit.action!r} (not in actions)")
        key = (limit.scope, limit.action, limit.per)
        if key in seen:
            raise ValueError(
                f"entry {index} counts the same runs over the same window as entry {seen[key]}"
            )
        seen[key] = index
    return limits


# The Policy field's type: declared after ``actions`` so the action names can be checked.
RateLimits = Annotated[tuple[RateLimit, ...], AfterValidator(_checked)]
