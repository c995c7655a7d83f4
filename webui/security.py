"""Sessions, CSRF, security headers, who is signed in, and the checks views put in front.

A session is a row in the store (``engine.accounts.sessions``); the signed cookie carries only its
random token and the CSRF token, so signing out and disabling a user revoke it for good.

Views use ``login_required``, ``role_required(role)`` (HTML pages) or
``api_auth_required(role)`` (``/api`` routes, bearer tokens only). Templates get
``csrf_token()``, ``has_role(user, role)`` and ``current_user``.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any, ParamSpec
from urllib.parse import urlsplit

from flask import (
    Flask,
    Response,
    abort,
    current_app,
    g,
    jsonify,
    redirect,
    request,
    session,
    url_for,
)
from flask.typing import ResponseReturnValue

from engine.accounts.login_limits import LoginLimiter, LoginLimits
from engine.accounts.sessions import (
    create_session,
    revoke_all_sessions,
    revoke_session,
    session_id,
)
from engine.accounts.users import ROLES, UserInfo, has_role, user_for_session, user_for_token
from webui.db import get_sessions

P = ParamSpec("P")
View = Callable[P, ResponseReturnValue]

DEFAULTS: dict[str, Any] = {
    "SESSION_COOKIE_NAME": "autosre_session",
    "SESSION_COOKIE_HTTPONLY": True,
    "SESSION_COOKIE_SAMESITE": "Lax",
    # Browsers keep Secure cookies on http://127.0.0.1 and http://localhost too.
    "SESSION_COOKIE_SECURE": True,
    "PERMANENT_SESSION_LIFETIME": timedelta(hours=12),
    "MAX_CONTENT_LENGTH": 1024 * 1024,  # forms and API bodies are small
    # Failed sign-ins allowed within the window, per (address, name), per address across
    # names (spraying) and per name across addresses (distributed guessing).
    "LOGIN_MAX_FAILURES": 5,
    "LOGIN_MAX_FAILURES_PER_ADDRESS": 20,
    "LOGIN_MAX_FAILURES_PER_NAME": 10,
    "LOGIN_FAILURE_WINDOW": 300.0,  # seconds
}
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
}
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
CSRF_KEY = "csrf"
SESSION_KEY = "sid"  # the random token of the session's row in the store
LIMITER = "autosre_login_limiter"


def init_app(app: Flask) -> None:
    """Install the session checks, CSRF, headers and template globals on the app."""
    limits = LoginLimits(
        per_address_and_name=app.config["LOGIN_MAX_FAILURES"],
        per_address=app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"],
        per_name=app.config["LOGIN_MAX_FAILURES_PER_NAME"],
        window=app.config["LOGIN_FAILURE_WINDOW"],
    )
    app.extensions[LIMITER] = LoginLimiter(app.extensions["autosre"], limits)
    app.before_request(load_user)
    app.before_request(check_csrf)
    app.after_request(set_security_headers)
    app.jinja_env.globals.update(csrf_token=csrf_token, has_role=has_role)
    app.context_processor(lambda: {"current_user": g.get("user")})


def login_limiter() -> LoginLimiter:
    """The app's limiter of failed sign-ins (counted in the store)."""
    limiter: LoginLimiter = current_app.extensions[LIMITER]
    return limiter


# -- the session ------------------------------------------------------------------


def log_in(user: UserInfo) -> None:
    """Start a fresh session for the user: a new row and token, nothing kept from before."""
    _revoke_current()
    session.clear()
    session.permanent = True
    lifetime: timedelta = current_app.permanent_session_lifetime
    token = create_session(
        get_sessions(),
        user.id,
        lifetime=lifetime.total_seconds(),
        address=request.remote_addr or "",
        user_agent=request.user_agent.string,
    )
    session[SESSION_KEY] = token
    g.user = user
    g.session_id = session_id(token)


def log_out() -> None:
    """End this session in the store and in the cookie, its CSRF token included."""
    _revoke_current()
    session.clear()
    g.user = None
    g.session_id = None


def log_out_everywhere(user: UserInfo) -> int:
    """End every session of the user, this one included; how many ended."""
    ended = revoke_all_sessions(get_sessions(), user.id)
    session.clear()
    g.user = None
    g.session_id = None
    return ended


def _revoke_current() -> None:
    token = session.get(SESSION_KEY)
    if isinstance(token, str):
        revoke_session(get_sessions(), token)


def load_user() -> None:
    """Set ``g.user`` from the session's row in the store: revoked, expired or disabled is out."""
    g.user = None
    g.session_id = None
    if request.endpoint == "static" or SESSION_KEY not in session:
        return
    token = session[SESSION_KEY]
    found = user_for_session(get_sessions(), token) if isinstance(token, str) else None
    if found is None:
        # Keep the CSRF token: a form posted after expiry then reaches the login redirect.
        session.pop(SESSION_KEY, None)
        return
    g.user, g.session_id = found


def csrf_token() -> str:
    """This session's CSRF token, made on first use (a hidden ``csrf_token`` form field)."""
    token = session.get(CSRF_KEY)
    if not isinstance(token, str):
        token = session[CSRF_KEY] = secrets.token_urlsafe(32)
    return token


def check_csrf() -> None:
    """Refuse a state-changing request without this session's CSRF token (400)."""
    if request.method not in UNSAFE_METHODS:
        return
    if request.path.startswith("/api/"):
        # The API takes bearer tokens only and ignores cookies: there is no ambient
        # credential another site could ride on, and a missing token must say 401.
        return
    expected = session.get(CSRF_KEY)
    sent = request.form.get("csrf_token") or request.headers.get("X-CSRF-Token") or ""
    if not isinstance(expected, str) or not hmac.compare_digest(expected.encode(), sent.encode()):
        abort(
            400,
            description="The form was missing its security token or it did not match this "
            "session (it may have expired). Go back, reload the page and try again.",
        )


def set_security_headers(response: Response) -> Response:
    """Add the CSP and the other protective headers to every response."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    if request.endpoint != "static":
        # Pages show who is signed in and live data: never from a shared or back-button cache.
        response.headers.setdefault("Cache-Control", "no-store")
    return response


# -- decorators for views ------------------------------------------------------------


def safe_next(target: str | None) -> str | None:
    """The target if it is a path on this site, else None (no open redirects)."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 0x20 or ord(c) == 0x7F for c in target):
        return None  # browsers read /\evil.example and /<tab>/evil.example as other hosts
    parts = urlsplit(target)
    return None if parts.scheme or parts.netloc else target


def _here() -> str:
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


def login_required(view: View[P]) -> View[P]:
    """HTML views: redirect to /login?next=<this page> unless someone is signed in."""

    @wraps(view)
    def wrapped(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
        if g.user is None:
            return redirect(url_for("auth.login", next=_here()))
        return view(*args, **kwargs)

    return wrapped


def role_required(role: str) -> Callable[[View[P]], View[P]]:
    """HTML views: sign-in as for login_required, then a 403 page without the role."""

    _known_role(role)

    def decorator(view: View[P]) -> View[P]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
            user: UserInfo | None = g.user
            if user is None:
                return redirect(url_for("auth.login", next=_here()))
            if not has_role(user, role):
                abort(403, description=f"This needs the {role} role; you are {user.role}.")
            return view(*args, **kwargs)

        return wrapped

    return decorator


def _known_role(role: str) -> None:
    # A typo in a decorator fails when the module is imported, not on the first request.
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}: use one of {', '.join(ROLES)}")


def api_error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    """A JSON error for /api routes: ``{"error": message, "status": status}``."""
    response = jsonify(error=message, status=status)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def api_auth_required(role: str = "viewer") -> Callable[[View[P]], View[P]]:
    """/api views: ``Authorization: Bearer <token>`` with at least the role, else 401/403 JSON.

    Sets ``g.user`` to the token's user; session cookies do not count here.
    """
    _known_role(role)

    def decorator(view: View[P]) -> View[P]:
        @wraps(view)
        def wrapped(*args: P.args, **kwargs: P.kwargs) -> ResponseReturnValue:
            scheme, _, token = request.headers.get("Authorization", "").partition(" ")
            token = token.strip()
            user = None
            if scheme.lower() == "bearer" and token:
                user = user_for_token(get_sessions(), token)
            if user is None:
                challenge = {"WWW-Authenticate": 'Bearer realm="autosre"'}
                return api_error(401, "a valid API token is required (Bearer)", challenge)
            if not has_role(user, role):
                message = f"this needs the {role} role; the token's user is {user.role}"
                return api_error(403, message)
            g.user = user
            return view(*args, **kwargs)

        return wrapped

    return decorator
