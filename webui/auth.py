"""Sign-in and sign-out: GET/POST /login, POST /logout."""

from __future__ import annotations

import math

from flask import Blueprint, g, redirect, render_template, request, url_for
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import TooManyRequests

from engine.users import authenticate
from webui.db import get_sessions
from webui.security import log_in, log_out, login_limiter, safe_next

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
    key = (request.remote_addr or "unknown", name[:64])
    wait = limiter.retry_after(key)
    if wait > 0:
        raise TooManyRequests(
            description="Too many failed sign-ins for this name from your address. "
            f"Try again in {math.ceil(wait)} seconds.",
            retry_after=math.ceil(wait),
        )
    user = authenticate(get_sessions(), name, password)
    if user is None:
        limiter.failed(key)
        return render_template(
            "login.html",
            next=safe_next(request.form.get("next")),
            name=name,
            error="Wrong user name or password, or the account is disabled.",
        )
    limiter.succeeded(key)
    log_in(user)
    return redirect(_next_page())


@bp.post("/logout")
def logout() -> ResponseReturnValue:
    """End the session (the form carries the CSRF token like every POST)."""
    log_out()
    return redirect(url_for("auth.login"))
