"""Web UI tests: the Flask test client against a real store (SQLite, and PostgreSQL where noted)."""
