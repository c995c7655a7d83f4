"""Alertmanager's webhook payload (version "4"), as untrusted input: every size bounded.

Alertmanager posts a group of alerts at a time and re-sends the whole group on every
group_interval and repeat_interval; a hostile sender may post anything. Fields this
module does not know (``groupKey``, ``truncatedAlerts``...) are ignored; the ones it
uses are typed and bounded, so a payload that parses is small enough to store.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)

from engine.errors import InputError

MAX_ALERTS = 10_000  # the hard cap of one post; the policy's max_per_post is lower
MAX_LABELS = 64
MAX_NAME = 256
MAX_LABEL_VALUE = 2048
MAX_ANNOTATION = 8192
MAX_URL = 2048

Name = Annotated[str, StringConstraints(min_length=1, max_length=MAX_NAME)]
LabelValue = Annotated[str, StringConstraints(max_length=MAX_LABEL_VALUE)]
Labels = Annotated[dict[Name, LabelValue], Field(max_length=MAX_LABELS)]
Annotations = Annotated[
    dict[Name, Annotated[str, StringConstraints(max_length=MAX_ANNOTATION)]],
    Field(max_length=MAX_LABELS),
]
Url = Annotated[str, StringConstraints(max_length=MAX_URL)]
Status = Literal["firing", "resolved"]


def _in_utc(value: datetime) -> datetime:
    try:
        return value.astimezone(UTC)
    except OverflowError:  # year 1 at +05:00 is before year 1 in UTC
        raise ValueError("the time is out of range") from None


Moment = Annotated[AwareDatetime, AfterValidator(_in_utc)]


class _Model(BaseModel):
    # Strict types (no "1" for 1), unknown fields ignored: Alertmanager adds fields. Fields
    # are named as Python names them, read by Alertmanager's names (aliases).
    model_config = ConfigDict(extra="ignore", frozen=True, strict=True)


class Alert(_Model):
    """One alert of the group: its labels say which host and kind it is about."""

    status: Status
    labels: Labels
    annotations: Annotations = {}
    starts_at: Moment = Field(alias="startsAt", strict=False)  # RFC 3339 text, in UTC
    ends_at: Moment | None = Field(None, alias="endsAt", strict=False)
    generator_url: Url = Field("", alias="generatorURL")
    fingerprint: Annotated[str, StringConstraints(pattern=r"^[0-9A-Za-z]{1,64}$")]

    @property
    def alertname(self) -> str:
        """The alert rule's name ("" when the label is missing)."""
        return self.labels.get("alertname", "")


class WebhookPayload(_Model):
    """What Alertmanager's webhook_configs receiver posts."""

    version: Literal["4"]
    receiver: Annotated[str, StringConstraints(max_length=MAX_NAME)] = ""
    status: Status
    alerts: Annotated[list[Alert], Field(max_length=MAX_ALERTS)]
    group_labels: Labels = Field({}, alias="groupLabels")
    common_labels: Labels = Field({}, alias="commonLabels")
    common_annotations: Annotations = Field({}, alias="commonAnnotations")
    external_url: Url = Field("", alias="externalURL")


class PayloadError(InputError):
    """A payload that is not Alertmanager's webhook format; the message names the field."""


def parse_payload(data: Any) -> WebhookPayload:
    """The payload, or PayloadError naming the first problem (its field and what is wrong)."""
    if not isinstance(data, dict):
        raise PayloadError("the body must be a JSON object (Alertmanager's webhook payload)")
    try:
        return WebhookPayload.model_validate(data)
    except ValidationError as exc:
        first = exc.errors(include_url=False, include_input=False)[0]
        where = ".".join(str(part) for part in first["loc"]) or "body"
        more = exc.error_count() - 1
        also = f" (and {more} more problem{'s' if more != 1 else ''})" if more else ""
        raise PayloadError(f"{escaped(where, 120)}: {first['msg']}{also}") from None


def escaped(text: str, limit: int = 80) -> str:
    """Untrusted text as it may appear in a message: control and non-ASCII characters as
    escapes (no terminal sequence survives), at most ``limit`` characters of it."""
    cut = text[:limit].encode("unicode_escape").decode("ascii")
    return cut + ("..." if len(text) > limit else "")


def shown(text: str, limit: int = 80) -> str:
    """Untrusted text quoted for a message, as ``escaped`` makes it."""
    return f'"{escaped(text, limit)}"'
