"""The start page: a placeholder for the dashboard, which comes with its own blueprint."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask.typing import ResponseReturnValue

from webui.security import login_required

bp = Blueprint("home", __name__)


@bp.get("/")
@login_required
def index() -> ResponseReturnValue:
    """Who is signed in, and where to go from here."""
    return render_template("home.html")
