"""The engine's components of the running app, for views: the store, the settings, and the
policy, inventory, recorder and executor (503 when the policy or inventory is broken)."""

from __future__ import annotations

import logging
from typing import cast

from flask import abort, current_app
from sqlalchemy.orm import Session, sessionmaker

from engine.components import Components
from engine.errors import InventoryError, PolicyError
from engine.settings import Settings

log = logging.getLogger(__name__)

COMPONENTS_KEY = "autosre_components"


def get_sessions() -> sessionmaker[Session]:
    """The app's session factory (``app.extensions["autosre"]``), opened by create_app."""
    return cast("sessionmaker[Session]", current_app.extensions["autosre"])


def get_settings() -> Settings:
    """The Settings the app was built with (paths to the policy, inventory, data dir)."""
    return get_components().settings


def get_components() -> Components:
    """The app's components, as given to create_app (nothing loaded yet, maybe)."""
    return cast(Components, current_app.extensions[COMPONENTS_KEY])


def components() -> Components:
    """The app's components with the policy and inventory loaded (a 503 page if either is
    broken): runs by hand and decided approvals share the engine's redactor, audit log and
    per-host locks."""
    found = get_components()
    try:
        found.refresh_policy()
    except PolicyError as exc:  # the one loaded before stays in force, as in the engine
        log.error(
            "the policy file changed but cannot be used, the one loaded before stays: %s", exc
        )
    try:
        found.load()
    except (PolicyError, InventoryError) as exc:
        abort(503, description=f"The policy or inventory cannot be used: {exc}")
    return found
