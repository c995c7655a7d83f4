"""Sign-in and sign-out: GET/POST /login, POST /logout, POST /logout/all, GET /account."""

from __future__ import annotations

from flask import Blueprint, flash, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import TooManyRequests

from engine.accounts.sessions import list_sessions
from engine.accounts.users import authenticate
from engine.timeutil import iso
from webui.db import get_sessions
from webui.security import (
    log_in,
    log_out,
    log_out_everywhere,
    login_limiter,
    login_required,
    safe_next,
)

bp = Blueprint("auth", __name__)


def _next_page() -> str:
    return safe_next(request.values.get("next")) or url_for("dashboard.index")


@bp.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The sign-in form; on success a fresh session and a redirect to ``next`` (this site only)."""
    if request.method == "GET":
        if g.user is not None:
            return redirect(_next_page())
        return render_template("login.html", next=safe_next(request.args.get("next")))

    name = request.form.get("name", "").strip().lower()
    password = request.form.get("password", "")
    limiter = login_limiter()
    address = request.remote_addr or "unknown"
    # Refused before the password is checked: guesses while limited tell nothing.
    refusal = limiter.check(address, name)
    if refusal is not None:
        raise TooManyRequests(
            description=f"{refusal.reason} Try again in {refusal.retry_after} seconds.",
            retry_after=refusal.retry_after,
        )
    user = authenticate(get_sessions(), name, password)
    if user is None:
        limiter.failed(address, name)
        return render_template(
            "login.html",
            next=safe_next(request.form.get("next")),
            name=name,
            error="Wrong user name or password, or the account is disabled.",
        )
    limiter.succeeded(address, name)
    log_in(user)
    return redirect(_next_page())


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End this session (the form carries the CSRF token like every POST)."""
    log_out()
    return redirect(url_for("auth.login"))


@bp.post("/logout/all")
@login_required
def logout_everywhere() -> ResponseReturnValue:
    """End every session of the signed-in user, on every browser and device."""
    ended = log_out_everywhere(g.user)
    flash(f"Signed out everywhere: {ended} session{'s' if ended != 1 else ''} ended.", "info")
    return redirect(url_for("auth.login"))


@bp.get("/account")
@login_required
def account() -> ResponseReturnValue:
    """Where the signed-in user is signed in, and a control to sign out everywhere."""
    rows = [
        {
            "id": info.id,
            "created_at": iso(info.created_at),
            "last_seen_at": iso(info.last_seen_at),
            "expires_at": iso(info.expires_at),
            "address": info.address,
            "user_agent": info.user_agent,
        }
        for info in list_sessions(get_sessions(), g.user.id)
    ]
    return render_template("account.html", sessions=rows, current_session=g.session_id)
