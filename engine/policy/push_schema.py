"""The policy's ``alerts:`` section: how Alertmanager's pushed alerts map to hosts and kinds.

The policy names the *environment variable* that holds the receiver's token, never the
token itself; with the variable unset the receiver (``POST /api/v1/alerts``) is disabled.

    alerts:
      token_env: AUTOSRE_ALERTS_TOKEN   # the bearer token Alertmanager sends
      host_label: instance              # matched to a host like the metrics' series
      kind_label: autosre_kind          # an alert may name its signal kind outright
      kinds: {HighCPU: high_cpu, NginxDown: service_down}   # or by its alertname
      confirm_within: 5m                # the engine's own data must show it by then
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from engine.durations import parse_duration
from engine.signals import SIGNALS

ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")  # Prometheus' label names

Seconds = Annotated[float, BeforeValidator(parse_duration)]


class Alerts(BaseModel):
    """Where the receiver's token lives, and which labels name an alert's host and kind."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    token_env: str | None = Field("AUTOSRE_ALERTS_TOKEN", description="None: receiver off")
    host_label: str = "instance"
    kind_label: str | None = "autosre_kind"
    kinds: dict[str, str] = Field(default_factory=dict, max_length=1000)
    confirm_within: Seconds = Field(300.0, gt=0, le=86400.0)
    # At most this many new alert events are stored per minute, from every sender together.
    max_per_minute: int = Field(600, ge=1, le=100_000)
    max_per_post: int = Field(1000, ge=1, le=10_000)

    @field_validator("token_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @field_validator("host_label", "kind_label")
    @classmethod
    def _label_name(cls, value: str | None) -> str | None:
        if value is not None and not LABEL_NAME.match(value):
            raise ValueError(f"{value!r} is not a Prometheus label name")
        return value

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: dict[str, str]) -> dict[str, str]:
        for alertname, kind in value.items():
            if kind not in SIGNALS:
                raise ValueError(
                    f"alert {alertname!r}: unknown signal kind {kind!r} "
                    f"(known: {', '.join(SIGNALS)})"
                )
        return value
