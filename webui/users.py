"""Users (admin only): list accounts, add one, change a role, disable one, enable it again.

Disabling takes a second step: a POST without ``confirm=yes`` disables nothing and shows a
confirmation page (confirm.js asks in a dialog first). Disabling and enabling are written
to the store's journal and the JSONL audit log, with who did it.
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, abort, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts.users import ROLES, create_user, disable_user, set_role
from engine.errors import InventoryError, PolicyError, UserError
from engine.read.users import list_users
from engine.record.audit import AuditLog
from engine.record.events import Journal
from engine.store.accounts import User
from webui.db import get_components, get_sessions
from webui.redaction import redactor
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


def enable_user(sessions: sessionmaker[Session], name: str) -> bool:
    """Let a disabled account sign in again; False if it was not disabled. Its old sessions
    stay revoked (disable_user ended them) and its tokens work again."""
    with sessions.begin() as session:
        user = session.scalar(select(User).where(User.name == name))
        if user is None:
            raise UserError(f"no user named {name!r}")
        was_disabled = user.disabled
        user.disabled = False
        return was_disabled


def _journal() -> Journal:
    parts = get_components()
    try:
        return parts.recorder.journal
    except (PolicyError, InventoryError):
        # A broken inventory must not keep an admin from locking an account out.
        return Journal(get_sessions(), AuditLog(parts.settings.audit_log, redactor=redactor()))


def _audit(journal: Journal, kind: str, name: str) -> None:
    """A journal event and its audit line: who changed which account."""
    verb = kind.removeprefix("user_")
    message = f"{g.user.name} {verb} user {name}"
    journal.event(time.time(), kind, message, data={"user": name, "by": g.user.name})


@bp.post("/users/<name>/disable")
@role_required("admin")
def disable(name: str) -> ResponseReturnValue:
    """Disable an account (not your own), once confirmed: its sessions are revoked, its tokens
    stop working."""
    _known(name)
    if name == g.user.name:
        return _page("You cannot disable your own account.")
    if request.form.get("confirm") != "yes":
        return render_template("users/confirm.html", name=name)  # nothing done yet
    journal = _journal()
    ended = disable_user(get_sessions(), name)
    _audit(journal, "user_disabled", name)
    flash(f"Disabled {name}; {ended} signed-in session{'s' if ended != 1 else ''} ended.", "info")
    return redirect(url_for("users.index"))


@bp.post("/users/<name>/enable")
@role_required("admin")
def enable(name: str) -> ResponseReturnValue:
    """Enable a disabled account again: it can sign in anew and its tokens work again."""
    _known(name)
    journal = _journal()
    if not enable_user(get_sessions(), name):
        flash(f"{name} is already enabled.", "info")
        return redirect(url_for("users.index"))
    _audit(journal, "user_enabled", name)
    flash(f"Enabled {name}: they can sign in again.", "info")
    return redirect(url_for("users.index"))
