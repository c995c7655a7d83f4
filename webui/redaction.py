"""The web UI's Redactor: the engine's secrets, the inventory's and the session key, hidden
from every page.

Run output and job events reach pages and the API redacted even if the engine wrote a
secret (a second line of defence: the executor redacts first).
"""

from __future__ import annotations

from typing import Any

from flask import current_app

from engine.errors import InventoryError, PolicyError
from engine.redact import Redactor
from webui.db import get_components, get_settings

REDACTOR_KEY = "autosre_web_redactor"


def redactor() -> Redactor:
    """The app's Redactor, built on first use from the settings' secrets, the inventory's
    (as the engine's own redactor) and the session key."""
    found = current_app.extensions.get(REDACTOR_KEY)
    if isinstance(found, Redactor):
        return found
    secrets = list(get_settings().secrets)
    complete = True
    try:
        secrets.extend(get_components().inventory.secrets)
    except (InventoryError, PolicyError):
        complete = False  # an inventory that does not load now: asked again next time
    # The key that signs sessions may come from the app's config or its key file instead.
    if isinstance(current_app.secret_key, str):
        secrets.append(current_app.secret_key)
    made = Redactor(secrets)
    if complete:
        current_app.extensions[REDACTOR_KEY] = made
    return made


def redact_strings(data: Any) -> Any:
    """A copy of JSON-like data with every string value redacted; keys and shape unchanged.

    Not ``Redactor.value``: that hides whole values under secret-looking keys, and here
    keys are often host names ("token-server"), whose stats a page still has to show.
    """
    hide = redactor()

    def walk(item: Any) -> Any:
        if isinstance(item, str):
            return hide.text(item)
        if isinstance(item, list | tuple):
            return [walk(value) for value in item]
        if isinstance(item, dict):
            return {key: walk(value) for key, value in item.items()}
        return item

    return walk(data)
