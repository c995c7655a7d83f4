"""The receiver's token: read from the variable the policy names (or ``NAME_FILE``), and
compared in constant time.

No variable named, or the variable unset or empty, means the receiver is off: it is
never open. The token itself never reaches the policy, the store or the logs.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Mapping
from pathlib import Path

from engine.errors import SettingsError
from engine.policy.push_schema import Alerts

MAX_TOKEN_FILE = 4096  # bytes: a token, not a document
MIN_TOKEN = 16  # characters: a short token is guessable, so it is refused at start


def alerts_token(alerts: Alerts, env: Mapping[str, str]) -> str | None:
    """The token, or None (receiver off); SettingsError for one that is unusable."""
    name = alerts.token_env
    if name is None:
        return None
    value = env.get(name, "").strip()
    path = env.get(f"{name}_FILE", "").strip()
    if not value and path:
        try:
            with Path(path).open("rb") as handle:
                raw = handle.read(MAX_TOKEN_FILE + 1)
        except OSError as exc:
            raise SettingsError(f"{name}_FILE", f"cannot be read: {exc.strerror}") from None
        if len(raw) > MAX_TOKEN_FILE:
            raise SettingsError(f"{name}_FILE", f"is larger than {MAX_TOKEN_FILE} bytes")
        value = raw.decode("utf-8", errors="replace").strip()
    if not value:
        return None
    if len(value) < MIN_TOKEN or any(c.isspace() or not c.isprintable() for c in value):
        raise SettingsError(
            name, f"must be at least {MIN_TOKEN} printable characters without spaces"
        )
    return value


def presented_token(authorization: str) -> str | None:
    """What an ``Authorization`` header presents: a bearer token, or the password of Basic
    credentials (Alertmanager's ``basic_auth``, a shared secret); None for anything else."""
    scheme, _, credentials = authorization.strip().partition(" ")
    credentials = credentials.strip()
    if not credentials or len(credentials) > MAX_TOKEN_FILE:
        return None
    if scheme.lower() == "bearer":
        return credentials
    if scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(credentials, validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError):
            return None
        _, colon, password = decoded.partition(":")
        return password if colon and password else None
    return None


def token_matches(expected: str, presented: str | None) -> bool:
    """True when the presented token is the expected one; the time taken does not depend on
    how much of it matches, nor on its length (both are hashed first)."""
    sent = hashlib.sha256((presented or "").encode("utf-8", "replace")).digest()
    wanted = hashlib.sha256(expected.encode("utf-8")).digest()
    return hmac.compare_digest(sent, wanted) and presented is not None
