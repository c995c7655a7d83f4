"""The receivers' protocols: Slack incoming webhooks, PagerDuty Events API v2, a generic
JSON webhook. Each turns a stored notice into its request and judges the reply.

No client library is used, on purpose: slack_sdk's ``WebhookClient`` posts through
urllib's default opener, which follows redirects, reads a whole answer whatever its
size and logs the webhook URL at DEBUG; python-pagerduty (``pagerduty``, the successor
of pdpyras) can point ``EventsApiV2Client`` at another base URL and does not follow
redirects, but it sleeps and retries inside the call (429s without limit by default)
and needs httpx besides the project's own client. Both protocols are one JSON POST, so
each is spoken here over engine/notify/transport.py, which holds receivers to a deadline.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.notify.notice import RESOLVE
from engine.notify.transport import DeliveryError, Reply, post_json
from engine.policy.notify_schema import Channel

PAGERDUTY_URL = "https://events.pagerduty.com"
SUMMARY_LIMIT = 1024  # PagerDuty truncates payload.summary beyond this
RETRYABLE = frozenset({408, 425, 429})  # besides 5xx: the receiver asks to try again


@dataclass(frozen=True, slots=True)
class Request:
    """Where and what to POST for one notice (the URL and body may hold secrets)."""

    url: str
    body: dict[str, Any]
    headers: dict[str, str]


def _title(notice: Mapping[str, Any]) -> str:
    if notice.get("event") == RESOLVE:
        return f"[AutoSRE] closed: incident {notice['incident_id']} on {notice['host']}"
    return (
        f"[AutoSRE] {notice.get('severity', 'error')}: incident {notice['incident_id']} "
        f"on {notice['host']} ({notice.get('kind', '')}) {notice.get('status', '')}"
    )


def slack_request(notice: Mapping[str, Any], url: str) -> Request:
    """An incoming-webhook message: a text line (the fallback) and a section block."""
    text = f"{_title(notice)}: {notice.get('summary', '')}"
    block = {"type": "section", "text": {"type": "mrkdwn", "text": _escape_mrkdwn(text)}}
    return Request(url, {"text": text, "blocks": [block]}, {})


def _escape_mrkdwn(text: str) -> str:
    # Slack reads <...> as links and mentions: a host name or reason is data, not markup.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def pagerduty_request(notice: Mapping[str, Any], routing_key: str, base_url: str) -> Request:
    """An Events API v2 event: trigger with a payload, or resolve, on the incident's key."""
    event: dict[str, Any] = {
        "routing_key": routing_key,
        "event_action": notice["event"],
        "dedup_key": notice["dedup_key"],
    }
    if notice["event"] != RESOLVE:
        event["payload"] = {
            "summary": _title(notice)[:SUMMARY_LIMIT],
            "source": notice["host"],
            "severity": notice.get("severity", "error"),
            "component": notice.get("kind", ""),
            "group": ",".join(notice.get("groups", [])),
            "class": notice.get("kind", ""),
            "custom_details": {
                "incident_id": notice["incident_id"],
                "status": notice.get("status", ""),
                "reason": notice.get("summary", ""),
                "at": notice.get("at"),
            },
        }
    return Request(f"{base_url.rstrip('/')}/v2/enqueue", event, {})


def webhook_request(notice: Mapping[str, Any], url: str, token: str | None) -> Request:
    """The notice itself as JSON, with a bearer token when the channel has a key."""
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return Request(url, dict(notice), headers)


def build_request(
    channel: Channel, notice: Mapping[str, Any], secrets: Mapping[str, str]
) -> Request:
    """The request for a notice on a channel, its secrets filled in from ``secrets``."""
    url = secrets.get(channel.url_env or "", "")
    key = secrets.get(channel.key_env or "", "") or None
    if channel.type == "slack":
        return slack_request(notice, url)
    if channel.type == "pagerduty":
        return pagerduty_request(notice, key or "", url or PAGERDUTY_URL)
    return webhook_request(notice, url, key)


def judge(channel: Channel, reply: Reply) -> None:
    """Return if the receiver took the notice; else DeliveryError saying why."""
    status = reply.status
    snippet = " ".join(reply.body.split())[:200]
    if 300 <= status < 400:
        raise DeliveryError(f"answered {status} (a redirect, never followed)", permanent=True)
    if status >= 500 or status in RETRYABLE:
        raise DeliveryError(f"answered {status}: {snippet}")
    if not 200 <= status < 300:
        raise DeliveryError(f"refused with {status}: {snippet}", permanent=True)
    if channel.type == "slack" and reply.body.strip() != "ok":
        raise DeliveryError(f"answered {status} without ok: {snippet}")
    if channel.type == "pagerduty" and _status_field(reply.body) != "success":
        raise DeliveryError(f"answered {status} without success: {snippet}")


def _status_field(body: str) -> object:
    try:
        answer = json.loads(body)
    except ValueError:
        return None
    return answer.get("status") if isinstance(answer, dict) else None


def deliver(
    channel: Channel, notice: Mapping[str, Any], secrets: Mapping[str, str], *, timeout: float
) -> None:
    """One delivery attempt of a stored notice on a channel; DeliveryError on failure."""
    request = build_request(channel, notice, secrets)
    reply = post_json(request.url, request.body, timeout=timeout, headers=request.headers)
    judge(channel, reply)
