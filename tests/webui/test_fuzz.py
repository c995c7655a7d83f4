"""Fuzz the JSON API from the OpenAPI document the app serves, with schemathesis.

The real app (WSGI) on a SQLite and a PostgreSQL store holding a few incidents, runs and
approvals, called with a viewer's and an operator's bearer token. Each operation gets
data that fits the document and data that does not; every response must be no 5xx and
fit the document (status code, content type, body schema), and data that does not fit
must be refused. Examples are few and derandomized: quick, and the same in CI every time.

Schemathesis' pytest integration (``from_fixture``) fails under pytest 9 (it reads
``node._nodeid``), so the operations are driven through its Python API instead.
"""

from __future__ import annotations

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from schemathesis import Case, GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.schemas import APIOperation
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts.users import create_token
from tests.webui.conftest import MakeUser
from tests.webui.seed import seed

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]
EXAMPLES = 20  # per operation and mode (derandomized: the same cases every run)
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,
    derandomize=True,
    database=None,  # nothing written under .hypothesis/
    suppress_health_check=list(HealthCheck),
)


def fuzz(operation: APIOperation, mode: GenerationMode, headers: dict[str, str]) -> str | None:
    """Run the operation's examples of one mode; the first failure as text, or None."""

    @FUZZ
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case: Case) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        check()
    except Exception as exc:  # each operation's failure is reported, not just the first
        return f"{operation.label} ({mode.value}): {exc}"
    return None


@pytest.mark.parametrize("role", ["viewer", "operator"])
@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_the_api_fits_its_document_and_never_fails(
    app: Flask, sessions: sessionmaker[Session], make_user: MakeUser, role: str
) -> None:
    seed(sessions)
    user = make_user(role)
    headers = {"Authorization": f"Bearer {create_token(sessions, user.name, 'fuzz')}"}
    schema = schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)
    failures = []
    operations = [result.ok() for result in schema.get_all_operations()]
    document = app.test_client().get("/api/v1/openapi.json").json
    assert document is not None
    documented = {f"{m.upper()} {path}" for path, ops in document["paths"].items() for m in ops}
    # Schemathesis leaves out the document's own path; every other operation is fuzzed.
    assert {op.label for op in operations} == documented - {"GET /api/v1/openapi.json"}
    for operation in operations:
        for mode in GenerationMode:
            failure = fuzz(operation, mode, headers)
            if failure is not None:
                failures.append(failure)
    assert not failures, "\n\n".join(failures)
