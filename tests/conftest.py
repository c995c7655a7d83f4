"""Shared fixtures: real services started on free 127.0.0.1 ports, stopped by pid."""

pytest_plugins = [
    "tests.fixtures.fake_llm",
    "tests.fixtures.nginx",
    "tests.fixtures.postgres",
    "tests.fixtures.prometheus",
]
