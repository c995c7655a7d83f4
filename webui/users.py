"""Users (admin only): list accounts, add one, change a role, disable one."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue

from engine.accounts.users import ROLES, create_user, disable_user, set_role
from engine.errors import UserError
from engine.read.users import list_users
from webui.db import get_sessions
from webui.security import role_required

bp = Blueprint("users", __name__)


def _page(error: str | None = None, form: dict[str, Any] | None = None) -> ResponseReturnValue:
    page = render_template(
        "users/index.html",
        users=[user.model_dump(mode="json") for user in list_users(get_sessions())],
        roles=ROLES,
        error=error,
        form=form or {},
    )
    return page, 400 if error else 200


def _known(name: str) -> None:
    if not any(user.name == name for user in list_users(get_sessions())):
        abort(404, description=f"No user named {name!r}.")


@bp.get("/users")
@role_required("admin")
def index() -> ResponseReturnValue:
    """Every account with its role, state and number of API tokens."""
    return _page()


@bp.post("/users")
@role_required("admin")
def add() -> ResponseReturnValue:
    """Add an account; a bad name, role or password re-shows the form (400)."""
    name = request.form.get("name", "").strip()
    role = request.form.get("role", "")
    password = request.form.get("password", "")
    form = {"name": name, "role": role}
    if password != request.form.get("confirm", ""):
        return _page("The password and its confirmation differ.", form)
    try:
        user = create_user(get_sessions(), name, password, role)
    except UserError as exc:
        return _page(str(exc), form)
    flash(f"Added {user.name} as {user.role}.", "info")
    return redirect(url_for("users.index"))


@bp.post("/users/<name>/role")
@role_required("admin")
def change_role(name: str) -> ResponseReturnValue:
    """Give a user another role."""
    _known(name)
    try:
        user = set_role(get_sessions(), name, request.form.get("role", ""))
    except UserError as exc:
        return _page(str(exc))
    flash(f"{user.name} is now {user.role}.", "info")
    return redirect(url_for("users.index"))


@bp.post("/users/<name>/disable")
@role_required("admin")
def disable(name: str) -> ResponseReturnValue:
    """Disable an account (not your own): its sessions are revoked, its tokens stop working."""
    _known(name)
    if name == g.user.name:
        return _page("You cannot disable your own account.")
    ended = disable_user(get_sessions(), name)
    flash(f"Disabled {name}; {ended} signed-in session{'s' if ended != 1 else ''} ended.", "info")
    return redirect(url_for("users.index"))
