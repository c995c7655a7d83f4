"""The Flask web UI: an app factory with one blueprint per area, reading the engine's store.

``webui`` may import ``engine``, never the reverse; the web UI never starts the scheduler.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from engine.components import Components
from engine.settings import MIN_SECRET_KEY_LENGTH, Settings, load_settings
from engine.signals import SIGNALS
from webui import (
    alerts,
    api,
    approvals,
    artifacts,
    auth,
    dashboard,
    freshness,
    health,
    host_page,
    incidents,
    maintenance,
    maintenance_api,
    playbooks,
    run_cancel,
    security,
    times,
    users,
)
from webui.db import COMPONENTS_KEY

# Nested in the API's blueprint (once, before any app registers it): /api/v1/maintenance...
# is then documented and guarded like the rest of /api/v1.
api.bp.register_blueprint(maintenance_api.bp)
api.bp.register_blueprint(alerts.bp)  # POST /api/v1/alerts: Alertmanager, its own token
api.bp.register_blueprint(run_cancel.api_bp)  # POST /api/v1/runs/<id>/cancel

SECRET_KEY_FILE = "web_secret_key"  # noqa: S105 - a file name


def create_app(
    test_config: Mapping[str, Any] | None = None,
    *,
    components: Components | None = None,
    settings: Settings | None = None,
) -> Flask:
    """Build the app: defaults, then the deployment's settings, then the test's config.

    ``components`` are the engine's parts of this process, made by the composition root
    (autosre/wiring.py); given only ``settings`` (tests), the app makes them from those.
    """
    if components is None:
        components = Components(load_settings() if settings is None else settings)
    settings = components.settings
    app = Flask(__name__)
    app.jinja_env.trim_blocks = True  # readable page source: no blank line per {% tag %}
    app.jinja_env.lstrip_blocks = True
    app.jinja_env.globals["signals"] = SIGNALS  # pages show each kind's title and unit
    app.jinja_env.filters["utc_iso"] = times.utc_iso  # <time datetime> in UTC (the when macro)
    app.config.from_mapping(security.DEFAULTS)
    app.config.from_mapping(
        AUTOSRE_DATA_DIR=str(settings.data_dir),
        AUTOSRE_DATABASE_URL=settings.database_url,
    )
    if settings.secret_key:
        app.config["SECRET_KEY"] = settings.secret_key
    if test_config is not None:
        app.config.from_mapping(test_config)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = stored_secret_key(Path(app.config["AUTOSRE_DATA_DIR"]))

    app.extensions["autosre"] = components.sessions
    app.extensions[COMPONENTS_KEY] = components
    security.init_app(app)
    app.register_error_handler(HTTPException, render_error)
    app.register_blueprint(auth.bp)
    app.register_blueprint(dashboard.bp)
    app.register_blueprint(incidents.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(playbooks.bp)
    app.register_blueprint(approvals.bp)
    app.register_blueprint(users.bp)
    app.register_blueprint(maintenance.bp)
    app.register_blueprint(freshness.bp)  # the freshness bar and the menu's count
    app.register_blueprint(artifacts.bp)  # a run's artifact download by ident
    app.register_blueprint(run_cancel.bp)  # cancel a run in flight (its page's button)
    app.register_blueprint(host_page.bp)  # /hosts/<name>, and the incident page's CPU chart
    return app


def render_error(error: HTTPException) -> ResponseReturnValue:
    """Every HTTP error, unhandled exceptions (500) included: a page, or JSON under /api/."""
    code = error.code or 500
    # Keep what the error adds (Allow on 405, Retry-After on 429), not its HTML body's type.
    headers = [(k, v) for k, v in error.get_headers() if k.lower() != "content-type"]
    if request.path.startswith("/api/"):
        response = security.api_error(code, error.description or error.name)
        response.headers.extend(headers)
        return response
    page = render_template("error.html", code=code, name=error.name, description=error.description)
    return page, code, headers


def stored_secret_key(data_dir: Path) -> str:
    """The key kept in ``<data_dir>/web_secret_key`` (mode 0600), created on first use."""
    path = data_dir / SECRET_KEY_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=data_dir, prefix=".web_secret_key.")  # mode 0600
        try:
            with os.fdopen(fd, "w") as file:
                file.write(secrets.token_urlsafe(48))
            # link() fails if the file exists: two processes starting at once share one key.
            with contextlib.suppress(FileExistsError):
                os.link(temp, path)
        finally:
            Path(temp).unlink()
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_KEY_LENGTH:
        raise RuntimeError(f"{path} holds no usable key: delete it to have a new one made")
    return key
