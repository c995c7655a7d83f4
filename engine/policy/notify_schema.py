"""The policy's ``notifications:`` section: channels, what each is sent, and delivery limits.

The policy names a channel's type and the *environment variables* that hold its URL or
key, never the secret itself (engine/notify/secrets.py reads them at start). No channel
configured means the log notifier only, as before this section existed.

    notifications:
      channels:
        oncall:
          type: pagerduty
          key_env: AUTOSRE_PAGERDUTY_ROUTING_KEY
          route: {severities: [critical], events: [trigger, resolve]}
        team:
          type: slack
          url_env: AUTOSRE_SLACK_WEBHOOK_URL
          route: {kinds: [high_cpu, disk_full], groups: [web]}
      delivery: {timeout: 5s, backoff: 2s, max_backoff: 5m}
"""

from __future__ import annotations

import re
from typing import Annotated, Literal, Self

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from engine.durations import parse_duration
from engine.signals import SIGNALS

CHANNEL_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
GROUP_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,255}$")
SEVERITIES = ("critical", "error", "warning", "info")  # PagerDuty's, used by every channel
EVENTS = ("trigger", "resolve")

Seconds = Annotated[float, BeforeValidator(parse_duration)]
ChannelType = Literal["slack", "pagerduty", "webhook"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Route(_Strict):
    """Which notices a channel gets; an empty list lets every value through."""

    kinds: list[str] = []
    groups: list[str] = []
    severities: list[Literal["critical", "error", "warning", "info"]] = []
    events: list[Literal["trigger", "resolve"]] = ["trigger", "resolve"]

    @field_validator("kinds")
    @classmethod
    def _known_kinds(cls, value: list[str]) -> list[str]:
        for kind in value:
            if kind not in SIGNALS:
                raise ValueError(f"unknown signal kind {kind!r} (known: {', '.join(SIGNALS)})")
        return value

    @field_validator("groups")
    @classmethod
    def _group_names(cls, value: list[str]) -> list[str]:
        for group in value:
            if not GROUP_NAME.match(group):
                raise ValueError(f"{group!r} is not an inventory group name")
        return value

    @field_validator("events")
    @classmethod
    def _some_event(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("must name at least one event (trigger, resolve)")
        return value


class Channel(_Strict):
    """One receiver: its type, where its secrets live (variable names) and its route."""

    type: ChannelType
    url_env: str | None = Field(None, description="variable holding the URL (a secret)")
    key_env: str | None = Field(None, description="variable holding the key or token")
    route: Route = Route()

    @field_validator("url_env", "key_env")
    @classmethod
    def _env_name(cls, value: str | None) -> str | None:
        if value is not None and not ENV_NAME.match(value):
            raise ValueError(f"{value!r} is not an environment variable name")
        return value

    @model_validator(mode="after")
    def _needs(self) -> Self:
        if self.type == "pagerduty" and self.key_env is None:
            raise ValueError("a pagerduty channel needs key_env (the routing key's variable)")
        if self.type in ("slack", "webhook") and self.url_env is None:
            raise ValueError(f"a {self.type} channel needs url_env (the URL's variable)")
        return self


class Delivery(_Strict):
    """How the outbox worker delivers: per-request time limit, and retry backoff."""

    timeout: Seconds = Field(5.0, gt=0, le=60)
    backoff: Seconds = Field(2.0, gt=0, le=3600)
    max_backoff: Seconds = Field(300.0, gt=0, le=86400)
    poll: Seconds = Field(1.0, ge=0.05, le=60)
    batch: int = Field(20, ge=1, le=500)

    @model_validator(mode="after")
    def _cap(self) -> Self:
        if self.max_backoff < self.backoff:
            raise ValueError("max_backoff must not be below backoff")
        return self


class Notifications(_Strict):
    """Every channel by name, and the delivery settings they share."""

    channels: dict[str, Channel] = {}
    delivery: Delivery = Delivery()

    @field_validator("channels")
    @classmethod
    def _channel_names(cls, value: dict[str, Channel]) -> dict[str, Channel]:
        for name in value:
            if not CHANNEL_NAME.match(name):
                raise ValueError(f"{name!r} is not an allowed channel name")
        return value

    def secret_names(self) -> set[str]:
        """Every environment variable the channels read."""
        return {
            name
            for channel in self.channels.values()
            for name in (channel.url_env, channel.key_env)
            if name is not None
        }
