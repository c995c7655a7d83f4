"""The one narrow seam for notification traffic: POST a JSON body, get status and body.

Built on the standard library's http.client, not a client library, because receivers
are treated as hostile: it never follows a redirect (a 3xx is an answer, not a hop), it
holds every request to one total deadline (a watchdog shuts the socket, so a receiver
that drips bytes cannot hold the worker), it reads at most ``max_body`` bytes of any
answer, it ignores proxy variables, and its errors never carry the URL (which may be the
secret itself, as a Slack webhook's is).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import socket
import ssl
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from engine.errors import AutoSREError

MAX_BODY = 64 * 1024  # bytes of an answer read; the rest is never read
USER_AGENT = "autosre-notify/1"


class DeliveryError(AutoSREError, RuntimeError):
    """One delivery attempt that failed; ``permanent`` when retrying cannot help."""

    def __init__(self, message: str, *, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


@dataclass(frozen=True, slots=True)
class Reply:
    """What the receiver answered (the body cut at MAX_BODY bytes)."""

    status: int
    body: str


def check_url(url: str) -> str | None:
    """Why the URL cannot be a receiver's (None when it can); the URL is never quoted."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return "is not a URL"
    if parts.scheme not in ("http", "https"):
        return "must be an http:// or https:// URL"
    if not parts.hostname:
        return "has no host"
    if port == 0:
        return "has port 0"
    return None


def post_json(
    url: str,
    body: Any,
    *,
    timeout: float,
    headers: dict[str, str] | None = None,
    max_body: int = MAX_BODY,
) -> Reply:
    """POST ``body`` as JSON; the reply, or DeliveryError (transient unless marked)."""
    reason = check_url(url)
    if reason is not None:
        raise DeliveryError(f"the receiver's URL {reason}", permanent=True)
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    conn: http.client.HTTPConnection
    if parts.scheme == "https":
        context = ssl.create_default_context()
        conn = http.client.HTTPSConnection(
            parts.hostname or "", parts.port, timeout=timeout, context=context
        )
    else:
        conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=timeout)
    data = json.dumps(body, ensure_ascii=False).encode("utf-8")
    sent = {"Content-Type": "application/json", "User-Agent": USER_AGENT, **(headers or {})}
    expired = threading.Event()
    watchdog = threading.Timer(timeout, _cut, (conn, expired))
    watchdog.daemon = True
    watchdog.start()
    try:
        conn.request("POST", target, body=data, headers=sent)
        response = conn.getresponse()
        text = response.read(max_body).decode("utf-8", errors="replace")
        return Reply(response.status, text)
    except ValueError as exc:  # a header value with a newline, say: a broken secret
        reason = f"request refused before sending: {type(exc).__name__}"
        raise DeliveryError(reason, permanent=True) from None
    except (OSError, http.client.HTTPException) as exc:
        if expired.is_set() or isinstance(exc, TimeoutError):
            raise DeliveryError(f"no answer within {timeout:g}s") from None
        raise DeliveryError(f"connection failed: {_describe(exc)}") from None
    finally:
        watchdog.cancel()
        conn.close()


def _cut(conn: http.client.HTTPConnection, expired: threading.Event) -> None:
    """Past the deadline: shut the socket, which ends any read or write blocked on it."""
    expired.set()
    sock = conn.sock
    if sock is not None:
        with contextlib.suppress(OSError):  # already closed: the request ended on its own
            sock.shutdown(socket.SHUT_RDWR)


def _describe(exc: BaseException) -> str:
    """The error's kind and errno text only: never its arguments, which may hold the URL."""
    if isinstance(exc, OSError) and exc.strerror:
        return f"{type(exc).__name__}: {exc.strerror}"
    return type(exc).__name__
