"""The store and settings of the running app, for views: one session per store call."""

from __future__ import annotations

from typing import cast

from flask import current_app
from sqlalchemy.orm import Session, sessionmaker

from engine.settings import Settings


def get_sessions() -> sessionmaker[Session]:
    """The app's session factory (``app.extensions["autosre"]``), opened by create_app."""
    return cast("sessionmaker[Session]", current_app.extensions["autosre"])


def get_settings() -> Settings:
    """The Settings the app was built with (paths to the policy, inventory, data dir)."""
    return cast(Settings, current_app.extensions["autosre_settings"])
