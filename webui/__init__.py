"""The Flask web UI (incident browser, artifacts, approvals) — not built yet.

It will be an app factory with blueprints reading the same store as the engine;
``webui`` may import ``engine``, never the reverse.
"""
