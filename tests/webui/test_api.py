"""The JSON API under /api/v1: tokens and roles, filters and keyset pages, approvals, errors.

Rows are inserted directly (a handful per table) so each check knows what to expect;
responses are checked against the OpenAPI document the app serves by ``conforms`` below.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts.users import create_token
from tests.webui.conftest import MakeUser
from tests.webui.seed import seed
from webui.converters import MAX_ID
from webui.openapi import openapi_document

Headers = dict[str, str]


# -- a tiny schema checker: types, required and unknown keys, enums, anyOf, $ref --------

TYPES: dict[str, Any] = {
    "string": lambda v: isinstance(v, str),
    "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
    "number": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
    "boolean": lambda v: isinstance(v, bool),
    "null": lambda v: v is None,
    "object": lambda v: isinstance(v, dict),
    "array": lambda v: isinstance(v, list),
}


def served(client: FlaskClient) -> dict[str, Any]:
    """The OpenAPI document the app serves (public: no token needed)."""
    document = client.get("/api/v1/openapi.json").json
    assert isinstance(document, dict)
    return document


def conforms(
    value: Any, schema: dict[str, Any], document: dict[str, Any], where: str = "$"
) -> None:
    """Assert the value fits the schema (the subset of JSON Schema the document uses).

    Stricter than JSON Schema on one point: an object with described properties may not
    carry any other key, so that every field the API returns is in the document.
    """
    if "$ref" in schema:
        name = schema["$ref"].removeprefix("#/components/schemas/")
        conforms(value, document["components"]["schemas"][name], document, where)
        return
    if "anyOf" in schema:
        misfits = []
        for option in schema["anyOf"]:
            try:
                conforms(value, option, document, where)
            except AssertionError as exc:
                misfits.append(str(exc))
            else:
                return
        raise AssertionError(f"{where}: {value!r} fits no option: {misfits}")
    if "type" in schema:
        kinds = schema["type"] if isinstance(schema["type"], list) else [schema["type"]]
        assert any(TYPES[k](value) for k in kinds), f"{where}: {value!r} is not {kinds}"
    if "enum" in schema and value is not None:
        assert value in schema["enum"], f"{where}: {value!r} not in {schema['enum']}"
    if "const" in schema:
        assert value == schema["const"], f"{where}: {value!r} is not {schema['const']!r}"
    members(value, schema, document, where)


def members(value: Any, schema: dict[str, Any], document: dict[str, Any], where: str) -> None:
    """Assert an object's keys and values, or an array's items, fit the schema."""
    if isinstance(value, dict):
        missing = set(schema.get("required", ())) - set(value)
        assert not missing, f"{where}: missing {sorted(missing)}"
        if "properties" in schema:
            unknown = set(value) - set(schema["properties"])
            assert not unknown, f"{where}: undocumented {sorted(unknown)}"
        for key, sub in schema.get("properties", {}).items():
            if key in value:
                conforms(value[key], sub, document, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            conforms(item, schema["items"], document, f"{where}[{i}]")


def documented(
    document: dict[str, Any], path: str, method: str = "get", code: int = 200
) -> dict[str, Any]:
    op = document["paths"][path][method]
    schema: dict[str, Any] = op["responses"][str(code)]["content"]["application/json"]["schema"]
    return schema


# -- fixtures --------------------------------------------------------------------------


@pytest.fixture
def seeded(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Six incidents (ids 1-6), a run with its decision and events, three approvals, hosts."""
    return seed(sessions)


@pytest.fixture
def token(sessions: sessionmaker[Session], make_user: MakeUser) -> Any:
    def issue(role: str) -> Headers:
        user = make_user(role)
        return {"Authorization": f"Bearer {create_token(sessions, user.name, 'test')}"}

    return issue


@pytest.fixture
def viewer(token: Any) -> Headers:
    headers: Headers = token("viewer")
    return headers


@pytest.fixture
def operator(token: Any) -> Headers:
    headers: Headers = token("operator")
    return headers


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    return served(client)


def get(client: FlaskClient, url: str, headers: Headers, status: int = 200) -> Any:
    response = client.get(url, headers=headers)
    assert response.status_code == status, response.text
    assert response.mimetype == "application/json"
    if status >= 400:
        conforms(response.json, {"$ref": "#/components/schemas/Error"}, served(client))
        assert response.json is not None and response.json["status"] == status
    return response.json


# -- the document ------------------------------------------------------------------------


def test_every_route_is_documented_and_the_document_is_public(
    app: Flask, client: FlaskClient
) -> None:
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith("/api/v1/"):
            path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
            routes |= {
                (path, m.lower()) for m in rule.methods or () if m not in {"HEAD", "OPTIONS"}
            }
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    assert response.json == json.loads(json.dumps(openapi_document(app)))
    assert response.json["openapi"] == "3.1.0"
    paths = response.json["paths"]
    assert routes == {(p, m) for p, ops in paths.items() for m in ops}
    for path, ops in paths.items():
        for op in ops.values():
            names = {p["name"] for p in op.get("parameters", ()) if p["in"] == "path"}
            assert names == set(re.findall(r"{(\w+)}", path)), path


def test_the_document_states_bounds_security_and_errors(document: dict[str, Any]) -> None:
    assert document["components"]["securitySchemes"] == {
        "bearer": {"type": "http", "scheme": "bearer"}
    }
    assert document["security"] == [{"bearer": []}]
    assert document["paths"]["/api/v1/openapi.json"]["get"]["security"] == []
    schemas = document["components"]["schemas"]
    assert schemas["Error"]["required"] == ["error", "status"]
    for path, ops in document["paths"].items():
        for method, op in ops.items():
            parameters = {p["name"]: p for p in op.get("parameters", ())}
            for parameter in parameters.values():
                if parameter["in"] == "path":
                    assert parameter["schema"] == {
                        "type": "integer",
                        "minimum": 1,
                        "maximum": MAX_ID,
                    }
                assert "null" not in json.dumps(parameter["schema"]), (path, parameter)
            if path == "/api/v1/openapi.json":
                continue
            assert "401" in op["responses"], (path, method)
            for code, response in op["responses"].items():
                if code != "200":
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}
    incidents = {p["name"]: p for p in document["paths"]["/api/v1/incidents"]["get"]["parameters"]}
    assert incidents["limit"]["schema"] == {
        "type": "integer",
        "minimum": 1,
        "maximum": 500,
        "default": 50,
    }
    assert incidents["before"]["schema"] == {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    assert incidents["status"]["schema"] == {"$ref": "#/components/schemas/IncidentStatus"}
    hosts = {p["name"]: p for p in document["paths"]["/api/v1/hosts"]["get"]["parameters"]}
    assert hosts["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 10_000}
    assert "recent" not in schemas["HostState"]["required"]
    decide = document["paths"]["/api/v1/approvals/{approval_id}/approve"]["post"]
    body = decide["requestBody"]["content"]["application/json"]["schema"]
    assert body == {"$ref": "#/components/schemas/Decide"}
    assert schemas["Decide"]["additionalProperties"] is False
    assert "operator" in decide["description"]


# -- authentication ----------------------------------------------------------------------

READS = ["/api/v1/incidents", "/api/v1/incidents/1", "/api/v1/runs", "/api/v1/runs/1"]
READS += ["/api/v1/hosts", "/api/v1/approvals"]


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize("url", READS)
def test_reads_need_a_valid_token(client: FlaskClient, viewer: Headers, url: str) -> None:
    response = get(client, url, {}, 401)
    assert "Bearer" in response["error"]
    assert client.get(url).headers["WWW-Authenticate"].startswith("Bearer")
    get(client, url, {"Authorization": "Bearer asr_nope"}, 401)
    get(client, url, {"Authorization": viewer["Authorization"].replace("Bearer", "Basic")}, 401)
    get(client, url, viewer)


@pytest.mark.usefixtures("seeded")
def test_a_browser_session_does_not_authenticate_the_api(
    viewer_client: FlaskClient, operator_client: FlaskClient, seeded: dict[str, int]
) -> None:
    get(viewer_client, "/api/v1/incidents", {}, 401)
    page = operator_client.get("/", follow_redirects=True).text
    found = re.search(r'<meta name="csrf-token" content="([^"]+)">', page)
    assert found
    url = f"/api/v1/approvals/{seeded['pending']}/approve"
    response = operator_client.post(url, headers={"X-CSRF-Token": found.group(1)})
    assert response.status_code == 401, response.text
    # Without a bearer header the CSRF check answers first; still JSON, still refused.
    response = operator_client.post(url)
    assert response.status_code == 401 and response.json is not None


# -- reads ---------------------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_every_read_with_viewer_and_operator_tokens_fits_the_document(
    client: FlaskClient, viewer: Headers, operator: Headers, seeded: dict[str, int]
) -> None:
    document = served(client)
    for headers in (viewer, operator):
        page = get(client, "/api/v1/incidents", headers)
        conforms(page, documented(document, "/api/v1/incidents"), document)
        assert [i["id"] for i in page["items"]] == [6, 5, 4, 3, 2, 1]
        assert page["next_before"] is None
        detail = get(client, "/api/v1/incidents/1", headers)
        conforms(detail, documented(document, "/api/v1/incidents/{incident_id}"), document)
        assert [r["ident"] for r in detail["runs"]] == ["r1"]
        assert len(detail["decisions"]) == 1 and len(detail["timeline"]) == 1
        conforms(
            get(client, "/api/v1/incidents/6", headers),
            documented(document, "/api/v1/incidents/{incident_id}"),
            document,
        )
        runs = get(client, "/api/v1/runs", headers)
        conforms(runs, documented(document, "/api/v1/runs"), document)
        assert [r["id"] for r in runs["items"]] == [seeded["run"]]
        run = get(client, f"/api/v1/runs/{seeded['run']}", headers)
        conforms(run, documented(document, "/api/v1/runs/{run_id}"), document)
        assert run["stats"] == {"web1": {"ok": 3}}
        hosts = get(client, "/api/v1/hosts", headers)
        conforms(hosts, documented(document, "/api/v1/hosts"), document)
        assert [h["host"] for h in hosts["items"]] == ["web2", "web3", "web1"]
        approvals = get(client, "/api/v1/approvals?status=all", headers)
        conforms(approvals, documented(document, "/api/v1/approvals"), document)
        assert len(approvals["items"]) == 3


@pytest.mark.usefixtures("seeded")
def test_incident_filters_and_keyset_pages(client: FlaskClient, viewer: Headers) -> None:
    def ids(query: str) -> list[int]:
        return [i["id"] for i in get(client, f"/api/v1/incidents?{query}", viewer)["items"]]

    assert ids("status=open") == [5, 2]
    assert ids("host=web1") == [5, 3, 1]
    assert ids("host=web1&kind=cpu") == [5, 1]
    assert ids("kind=memory") == [3]
    assert ids("host=nowhere") == []
    assert ids("since=2026-01-03") == [6, 5, 4, 3]
    assert ids("until=2026-01-03T00:00:00Z") == [2, 1]
    assert ids("since=2026-01-02T00:00:00%2B00:00&until=2026-01-04") == [3, 2]
    assert ids("since=2026-01-02T01:00:00%2B01:00&until=2026-01-02T00:00:01") == [2]
    seen, before = [], ""
    while True:
        page = get(client, f"/api/v1/incidents?limit=4{before}", viewer)
        seen += [i["id"] for i in page["items"]]
        if page["next_before"] is None:
            break
        assert page["next_before"] == seen[-1]
        before = f"&before={page['next_before']}"
    assert seen == [6, 5, 4, 3, 2, 1]
    assert get(client, "/api/v1/incidents?limit=3", viewer)["next_before"] == 4
    assert get(client, "/api/v1/incidents?limit=2&before=3&status=open", viewer) == {
        "items": [get(client, "/api/v1/incidents?status=open", viewer)["items"][1]],
        "next_before": None,
    }


def test_runs_hosts_and_approvals_filters(
    client: FlaskClient, viewer: Headers, seeded: dict[str, int]
) -> None:
    document = served(client)
    page = get(client, "/api/v1/runs?limit=1", viewer)
    assert page["next_before"] is None and len(page["items"]) == 1
    assert get(client, f"/api/v1/runs?before={seeded['run']}", viewer)["items"] == []
    hosts = get(client, "/api/v1/hosts?status=HIGH_CPU", viewer)["items"]
    assert [h["host"] for h in hosts] == ["web2"]
    full = get(client, "/api/v1/hosts?recent=true", viewer)["items"]
    brief = get(client, "/api/v1/hosts?recent=false", viewer)
    conforms(brief, documented(document, "/api/v1/hosts"), document)
    assert brief["items"] == [{k: v for k, v in h.items() if k != "recent"} for h in full]
    assert [h["host"] for h in full] == ["web2", "web3", "web1"]
    assert full[0]["recent"] == [[1.0, 2.0]]
    brief = get(client, "/api/v1/hosts?recent=false&status=UNKNOWN&limit=1", viewer)["items"]
    assert [h["host"] for h in brief] == ["web3"]
    assert len(get(client, "/api/v1/hosts?limit=2", viewer)["items"]) == 2

    def approvals(query: str) -> list[int]:
        return [a["id"] for a in get(client, f"/api/v1/approvals{query}", viewer)["items"]]

    assert approvals("") == [seeded["pending"]]
    assert approvals("?status=pending") == [seeded["pending"]]
    assert approvals("?status=expired") == [seeded["expired"]]
    assert approvals("?status=approved") == [seeded["approved"]]
    assert approvals("?status=rejected") == []
    assert approvals("?status=all&limit=2") == [seeded["approved"], seeded["expired"]]


BAD_READS = [
    ("/api/v1/incidents?limit=0", "limit"),
    ("/api/v1/incidents?limit=501", "limit"),
    ("/api/v1/incidents?limit=ten", "limit"),
    ("/api/v1/incidents?limit=1_0", "limit"),
    ("/api/v1/incidents?before=-3", "before"),
    ("/api/v1/incidents?before=99999999999999999999", "before"),
    ("/api/v1/incidents?status=closed", "status"),
    ("/api/v1/incidents?since=yesterday", "since"),
    ("/api/v1/incidents?until=2026-13-01", "until"),
    ("/api/v1/incidents?since=2026-01-05&until=2026-01-01", "since"),
    ("/api/v1/incidents?host=", "host"),
    ("/api/v1/incidents?kind=" + "x" * 33, "kind"),
    ("/api/v1/incidents?sort=id", "sort"),
    ("/api/v1/incidents/1?verbose=1", "verbose"),
    ("/api/v1/runs?limit=-1", "limit"),
    ("/api/v1/runs?before=x", "before"),
    ("/api/v1/hosts?status=normal", "status"),
    ("/api/v1/hosts?limit=10001", "limit"),
    ("/api/v1/hosts?recent=no", "recent"),
    ("/api/v1/approvals?status=done", "status"),
    ("/api/v1/approvals?limit=1000", "limit"),
]


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(("url", "named"), BAD_READS)
def test_bad_query_parameters_are_400_naming_them(
    client: FlaskClient, viewer: Headers, url: str, named: str
) -> None:
    assert named in get(client, url, viewer, 400)["error"]


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    "url",
    [
        "/api/v1/incidents/999",
        "/api/v1/incidents/abc",
        "/api/v1/incidents/-1",
        f"/api/v1/incidents/{2**64}",
        "/api/v1/runs/999",
        "/api/v1/runs/1.5",
        "/api/v1/nothing",
    ],
)
def test_unknown_ids_and_paths_are_json_404(client: FlaskClient, viewer: Headers, url: str) -> None:
    get(client, url, viewer, 404)


def test_wrong_method_is_json_405(client: FlaskClient, viewer: Headers) -> None:
    response = client.delete("/api/v1/incidents", headers=viewer)
    assert response.status_code == 405 and response.json == {
        "error": response.json["error"],
        "status": 405,
    }
    assert "GET" in response.headers["Allow"]


# -- deciding approvals --------------------------------------------------------------------


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_operator_approves_and_rejects_once(
    client: FlaskClient, operator: Headers, seeded: dict[str, int]
) -> None:
    document = served(client)
    url = f"/api/v1/approvals/{seeded['pending']}"
    response = client.post(f"{url}/approve", headers=operator, json={"note": "  go ahead "})
    assert response.status_code == 200, response.text
    approval = documented(document, "/api/v1/approvals/{approval_id}/approve", "post")
    conforms(response.json, approval, document)
    assert response.json is not None
    assert response.json["status"] == "approved" and response.json["note"] == "go ahead"
    assert response.json["decided_by"].startswith("operator")
    again = client.post(f"{url}/reject", headers=operator)
    assert again.status_code == 409 and again.json is not None
    assert again.json["status"] == 409 and "approved" in again.json["error"]
    expired = client.post(f"/api/v1/approvals/{seeded['expired']}/reject", headers=operator)
    assert expired.status_code == 409, expired.text
    assert get(client, "/api/v1/approvals?status=expired", operator)["items"][0]["status"] == (
        "expired"
    )


def test_reject_with_no_body_and_an_admin_token(
    client: FlaskClient, token: Any, seeded: dict[str, int]
) -> None:
    response = client.post(f"/api/v1/approvals/{seeded['pending']}/reject", headers=token("admin"))
    assert response.status_code == 200, response.text
    assert response.json is not None
    assert response.json["status"] == "rejected" and response.json["note"] is None


def test_viewer_may_not_decide(
    client: FlaskClient, viewer: Headers, seeded: dict[str, int]
) -> None:
    for verb in ("approve", "reject"):
        response = client.post(f"/api/v1/approvals/{seeded['pending']}/{verb}", headers=viewer)
        assert response.status_code == 403 and response.json is not None
        assert "operator" in response.json["error"]
    assert get(client, "/api/v1/approvals", viewer)["items"][0]["status"] == "pending"
    response = client.post(
        f"/api/v1/approvals/{seeded['pending']}/approve", headers={"Authorization": "Bearer x"}
    )
    assert response.status_code == 401


BAD_BODIES: list[tuple[dict[str, Any], int, str]] = [
    ({"data": "{not json", "content_type": "application/json"}, 400, "malformed"),
    ({"json": ["note"]}, 400, "object"),
    ({"json": {"note": 5}}, 400, "note"),
    ({"json": {"note": "x" * 501}}, 400, "500"),
    ({"json": {"note": "ok", "by": "someone else"}}, 400, "'by'"),
    ({"data": "note=hi", "content_type": "application/x-www-form-urlencoded"}, 415, "json"),
    ({"data": '{"note": "hi"}', "content_type": "text/plain"}, 415, "text/plain"),
    ({"data": b"\xff\xfe", "content_type": "application/json"}, 400, "malformed"),
]


@pytest.mark.parametrize(("kwargs", "status", "named"), BAD_BODIES)
def test_bad_bodies_are_4xx_and_change_nothing(
    client: FlaskClient,
    operator: Headers,
    seeded: dict[str, int],
    kwargs: dict[str, Any],
    status: int,
    named: str,
) -> None:
    url = f"/api/v1/approvals/{seeded['pending']}/approve"
    response = client.post(url, headers=operator, **kwargs)
    assert response.status_code == status, response.text
    assert response.json is not None and response.json["status"] == status
    assert named in response.json["error"]
    assert get(client, "/api/v1/approvals", operator)["items"][0]["status"] == "pending"


@pytest.mark.usefixtures("seeded")
@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("/api/v1/approvals/999/approve", 404),
        ("/api/v1/approvals/abc/approve", 404),
        (f"/api/v1/approvals/{2**63}/reject", 404),
        ("/api/v1/approvals/1/approve?force=1", 400),
    ],
)
def test_decide_bad_ids_and_parameters(
    client: FlaskClient, operator: Headers, url: str, status: int
) -> None:
    response = client.post(url, headers=operator, json={})
    assert response.status_code == status, response.text
    assert response.json is not None and response.json["status"] == status
