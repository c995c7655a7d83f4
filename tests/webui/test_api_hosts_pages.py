"""GET /api/v1/hosts a page at a time: a keyset walk over the fleet, problems first.

SQLite, and PostgreSQL (whose collation orders names its own way: the walk must follow it).
"""

from __future__ import annotations

from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts.users import create_token
from engine.record.live import LivePublisher
from engine.types import HostStatus
from tests.engine.test_live import T0, Clock, fleet
from tests.webui.conftest import MakeUser
from tests.webui.test_api import documented, served

Headers = dict[str, str]
# Names whose order differs between byte order and a locale's (case, dashes, digits).
NAMES = [f"web{i:03d}" for i in range(40)] + ["Web-b", "web-a", "db_1", "DB2", "a.b-c"]
STATUSES = {
    name: (
        HostStatus.HIGH_CPU
        if i % 9 == 0
        else HostStatus.UNKNOWN
        if i % 7 == 0
        else HostStatus.NORMAL
    )
    for i, name in enumerate(NAMES)
}


pytestmark = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture
def viewer(sessions: sessionmaker[Session], make_user: MakeUser) -> Headers:
    user = make_user("viewer")
    return {"Authorization": f"Bearer {create_token(sessions, user.name, 'test')}"}


@pytest.fixture
def published(sessions: sessionmaker[Session]) -> None:
    LivePublisher(sessions, clock=Clock()).publish(*fleet(STATUSES, at=T0), 0.1)


def get(client: FlaskClient, url: str, headers: Headers, status: int = 200) -> Any:
    response = client.get(url, headers=headers)
    assert response.status_code == status, response.text
    return response.json


@pytest.mark.usefixtures("published")
@pytest.mark.parametrize("size", [1, 4, 7, 45, 100])
def test_pages_walk_the_whole_fleet_in_order_without_overlap_or_gap(
    client: FlaskClient, viewer: Headers, size: int
) -> None:
    whole = get(client, "/api/v1/hosts?recent=false", viewer)
    assert whole["total"] == len(NAMES) and whole["next_after"] is None
    order = [h["host"] for h in whole["items"]]
    assert sorted(order) == sorted(NAMES)
    document = served(client)
    walked: list[str] = []
    url = f"/api/v1/hosts?limit={size}"
    pages = 0
    while True:
        page = get(client, url, viewer)
        pages += 1
        assert page["total"] == len(NAMES)
        assert 0 < len(page["items"]) <= size
        assert all(item["recent"] is not None for item in page["items"] if item["value"])
        walked += [h["host"] for h in page["items"]]
        if page["next_after"] is None:
            break
        assert len(page["items"]) == size
        url = f"/api/v1/hosts?limit={size}&after={page['next_after']}"
    assert walked == order  # every host once, problems first, as the unpaged list
    assert pages == -(-len(NAMES) // size)
    assert documented(document, "/api/v1/hosts") == {"$ref": "#/components/schemas/HostPage"}


@pytest.mark.usefixtures("published")
def test_a_status_filter_pages_and_counts_only_its_hosts(
    client: FlaskClient, viewer: Headers
) -> None:
    high = sorted(h for h, s in STATUSES.items() if s is HostStatus.HIGH_CPU)
    first = get(client, "/api/v1/hosts?status=HIGH_CPU&limit=2&recent=false", viewer)
    assert first["total"] == len(high)
    rest = get(
        client, f"/api/v1/hosts?status=HIGH_CPU&recent=false&after={first['next_after']}", viewer
    )
    assert rest["next_after"] is None
    names = [h["host"] for h in first["items"] + rest["items"]]
    assert sorted(names) == high and len(names) == len(set(names))


BAD = ["web001", "3.web001", "x.web001", "1.", ".web001", "1.web\x00", "2." + "w" * 300, ""]


@pytest.mark.usefixtures("published")
@pytest.mark.parametrize("cursor", BAD)
def test_a_bad_cursor_is_a_400_naming_after(
    client: FlaskClient, viewer: Headers, cursor: str
) -> None:
    answer = client.get("/api/v1/hosts", query_string={"after": cursor}, headers=viewer)
    assert answer.status_code == 400, answer.text
    assert answer.json is not None
    assert answer.json["status"] == 400
    assert "after" in answer.json["error"]


def test_the_document_describes_the_page(client: FlaskClient) -> None:
    document = served(client)
    operation = document["paths"]["/api/v1/hosts"]["get"]
    parameters = {p["name"]: p for p in operation["parameters"]}
    assert parameters["after"]["schema"]["type"] == "string"
    assert "next_after" in parameters["after"]["description"]
    assert parameters["limit"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 10_000}
    assert 400 in operation["responses"] or "400" in operation["responses"]
    page = document["components"]["schemas"]["HostPage"]
    assert {"items", "total"} <= set(page["required"])
