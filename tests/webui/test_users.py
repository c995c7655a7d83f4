"""The users page (admin only): list, add, change a role, disable."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts.users import authenticate
from tests.fixtures.reads import list_users
from tests.webui.conftest import PASSWORD, MakeUser

Token = Callable[[FlaskClient], str]


def users(sessions: sessionmaker[Session]) -> dict[str, dict[str, object]]:
    return {u["name"]: u for u in list_users(sessions)}


def test_admin_lists_users(admin_client: FlaskClient, make_user: MakeUser) -> None:
    make_user("viewer", "vera")
    page = admin_client.get("/users")
    assert page.status_code == 200
    assert "vera" in page.text and "admin" in page.text


def test_admin_adds_a_user(
    admin_client: FlaskClient, csrf_token: Token, sessions: sessionmaker[Session]
) -> None:
    data = {
        "csrf_token": csrf_token(admin_client),
        "name": "otto",
        "role": "operator",
        "password": PASSWORD,
        "confirm": PASSWORD,
    }
    response = admin_client.post("/users", data=data)
    assert response.status_code == 302
    assert users(sessions)["otto"]["role"] == "operator"
    assert authenticate(sessions, "otto", PASSWORD) is not None
    assert "Added otto as operator" in admin_client.get("/users").text


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"name": "Bad Name"}, "invalid user name"),
        ({"password": "short", "confirm": "short"}, "password too short"),
        ({"confirm": PASSWORD + "x"}, "confirmation differ"),
        ({"role": "root"}, "unknown role"),
        ({"name": "admin"}, "already exists"),
    ],
)
def test_bad_additions_are_400(
    admin_client: FlaskClient,
    csrf_token: Token,
    sessions: sessionmaker[Session],
    fields: dict[str, str],
    message: str,
) -> None:
    data = {"name": "newbie", "role": "viewer", "password": PASSWORD, "confirm": PASSWORD}
    data.update(fields)
    response = admin_client.post("/users", data={"csrf_token": csrf_token(admin_client), **data})
    assert response.status_code == 400
    assert message in response.text
    assert "newbie" not in users(sessions) or fields.get("name") == "newbie"


def test_admin_changes_a_role(
    admin_client: FlaskClient,
    csrf_token: Token,
    make_user: MakeUser,
    sessions: sessionmaker[Session],
) -> None:
    make_user("viewer", "vera")
    token = csrf_token(admin_client)
    response = admin_client.post("/users/vera/role", data={"csrf_token": token, "role": "operator"})
    assert response.status_code == 302
    assert users(sessions)["vera"]["role"] == "operator"
    bad = admin_client.post("/users/vera/role", data={"csrf_token": token, "role": "root"})
    assert bad.status_code == 400
    assert users(sessions)["vera"]["role"] == "operator"
    missing = admin_client.post("/users/nobody/role", data={"csrf_token": token, "role": "viewer"})
    assert missing.status_code == 404


def test_admin_disables_a_user_but_not_themselves(
    admin_client: FlaskClient,
    csrf_token: Token,
    make_user: MakeUser,
    sessions: sessionmaker[Session],
) -> None:
    make_user("operator", "otto")
    token = csrf_token(admin_client)
    disabled = admin_client.post(
        "/users/otto/disable", data={"csrf_token": token, "confirm": "yes"}
    )
    assert disabled.status_code == 302
    assert users(sessions)["otto"]["disabled"] is True
    assert authenticate(sessions, "otto", PASSWORD) is None
    own = admin_client.post("/users/admin/disable", data={"csrf_token": token})
    assert own.status_code == 400
    assert "your own account" in own.text
    assert users(sessions)["admin"]["disabled"] is False
    assert admin_client.post("/users/nobody/disable", data={"csrf_token": token}).status_code == 404


@pytest.mark.parametrize("role", ["viewer", "operator"])
def test_non_admins_are_403(
    signed_in: Callable[..., FlaskClient],
    csrf_token: Token,
    make_user: MakeUser,
    sessions: sessionmaker[Session],
    role: str,
) -> None:
    make_user("viewer", "vera")
    client = signed_in(role, "someone")
    token = csrf_token(client)
    assert client.get("/users").status_code == 403
    data = {"csrf_token": token, "name": "x1", "role": "admin", "password": PASSWORD}
    assert client.post("/users", data={**data, "confirm": PASSWORD}).status_code == 403
    assert (
        client.post("/users/vera/role", data={"csrf_token": token, "role": "admin"}).status_code
        == 403
    )
    assert client.post("/users/vera/disable", data={"csrf_token": token}).status_code == 403
    assert users(sessions)["vera"]["role"] == "viewer"
    assert users(sessions)["vera"]["disabled"] is False
    assert "x1" not in users(sessions)


def test_missing_csrf_is_400(admin_client: FlaskClient, make_user: MakeUser) -> None:
    make_user("viewer", "vera")
    assert admin_client.post("/users/vera/disable").status_code == 400
