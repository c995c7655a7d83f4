"""The store, settings and engine components of the running app, for views."""

from __future__ import annotations

import threading
from typing import cast

from flask import abort, current_app
from sqlalchemy.orm import Session, sessionmaker

from autosre.wiring import Components, assemble
from engine.errors import InventoryError, PolicyError
from engine.inventory import load_inventory
from engine.policy.file import load_policy
from engine.settings import Settings

COMPONENTS_KEY = "autosre_components"
_lock = threading.Lock()


def get_sessions() -> sessionmaker[Session]:
    """The app's session factory (``app.extensions["autosre"]``), opened by create_app."""
    return cast("sessionmaker[Session]", current_app.extensions["autosre"])


def get_settings() -> Settings:
    """The Settings the app was built with (paths to the policy, inventory, data dir)."""
    return cast(Settings, current_app.extensions["autosre_settings"])


def components() -> Components:
    """The policy, inventory, recorder and executor of this app, loaded once (503 if broken).

    They are the engine's own components, assembled the same way, so runs by hand and
    decided approvals share its redactor, audit log and per-host locks.
    """
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    with _lock:
        found: Components | None = app.extensions.get(COMPONENTS_KEY)
        if found is not None:
            return found
        settings = get_settings()
        try:
            policy = load_policy(settings.policy, playbook_dir=settings.playbook_dir)
            inventory = load_inventory(settings.inventory)
        except (PolicyError, InventoryError) as exc:
            abort(503, description=f"The policy or inventory cannot be used: {exc}")
        found = assemble(settings, policy, inventory, get_sessions())
        app.extensions[COMPONENTS_KEY] = found
        return found
