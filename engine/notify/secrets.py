"""The channels' secrets: read from the environment (or a file it names) once, at start.

The policy names the variables (``url_env``, ``key_env``); their values never reach the
store, the logs or the UI. ``NAME_FILE`` holding a path stands in for ``NAME`` (as with
Docker or systemd credentials). The environment is passed in: only the composition root
(autosre/wiring.py) hands over ``os.environ``.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from engine.errors import SettingsError
from engine.notify.transport import check_url
from engine.policy.notify_schema import Notifications

MAX_SECRET_FILE = 64 * 1024  # bytes: a key or a URL, not a document


def _read(name: str, env: Mapping[str, str]) -> str | None:
    value = env.get(name, "").strip()
    if value:
        return value
    path = env.get(f"{name}_FILE", "").strip()
    if not path:
        return None
    try:
        with Path(path).open("rb") as handle:
            raw = handle.read(MAX_SECRET_FILE + 1)
    except OSError as exc:
        raise SettingsError(f"{name}_FILE", f"cannot be read: {exc.strerror}") from None
    if len(raw) > MAX_SECRET_FILE:
        raise SettingsError(f"{name}_FILE", f"is larger than {MAX_SECRET_FILE} bytes")
    return raw.decode("utf-8", errors="replace").strip() or None


def channel_secrets(notifications: Notifications, env: Mapping[str, str]) -> dict[str, str]:
    """Each variable the channels name, with its value; SettingsError (naming the variable,
    never its value) for one that is unset or not a usable URL."""
    found: dict[str, str] = {}
    for name, channel in notifications.channels.items():
        for variable, is_url in ((channel.url_env, True), (channel.key_env, False)):
            if variable is None or variable in found:
                continue
            value = _read(variable, env)
            if value is None:
                raise SettingsError(
                    variable, f"must be set (or {variable}_FILE) for notification channel {name!r}"
                )
            reason = check_url(value) if is_url else None
            if reason is not None:
                raise SettingsError(variable, f"{reason} (notification channel {name!r})")
            if any(c in value for c in "\r\n\x00"):
                raise SettingsError(variable, "must be one line")
            found[variable] = value
    return found
