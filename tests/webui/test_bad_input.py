"""Hostile input on every route: a 4xx with a message, never a 5xx.

Walks every rule of ``app.url_map`` with hostile path values and query strings, signed in
as an admin (and with an admin bearer token for /api), then checks the known cases:
huge ids, dates whose UTC conversion overflows, deeply nested and oversized JSON bodies.

A query parameter or form field gets every hostile value only on the routes that read it:
the first value finds out (a route that has not read a key cannot answer differently for
another value of it), so the walk spends its requests where input reaches code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from typing import Any, ClassVar

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.routing import Rule

from engine.accounts.users import create_token
from tests.webui.seed import seed

HOSTILE_SEGMENTS = [
    "99999999999999999999",
    str(2**31),
    str(2**63),
    "-1",
    "0",
    "1.5",
    "%C3%BC",  # ü
    "%E2%80%AE1",  # right-to-left override
    "%F0%9F%92%A5",  # an emoji
    "..%2F..%2Fetc%2Fpasswd",
    "%2E%2E",
    "%00",
    "%0A",
    "x" * 5000,
    "9" * 5000,  # past int()'s 4300-digit limit
]
HOSTILE_VALUES = [
    "99999999999999999999",
    "-1",
    "0001-01-01T00:00:00%2B14:00",
    "9999-12-31T23:59:59-12:00",
    "9999-12-31",
    "%00",
    "%FF",
    "%C2%B2",  # ², a digit to str.isdigit() but not to int()
    "x" * 5000,
]
PARAMETERS = ["page", "before", "limit", "since", "until", "from", "to", "status", "host"]
PARAMETERS += ["kind", "q", "recent", "next"]
FORM_FIELDS = ["note", "name", "role", "password", "confirm", "hosts", "var_greeting", "check"]
HOSTILE_TEXT = ["\x00", "a\x00b", "\u202e\ufffd", "x" * 5000, "99999999999999999999", "-1"]
ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


@pytest.fixture
def admin(
    signed_in: Callable[..., FlaskClient],
    csrf_token: Callable[[FlaskClient], str],
    sessions: sessionmaker[Session],
) -> tuple[FlaskClient, str, dict[str, str], dict[str, int]]:
    """An admin's signed-in client, its CSRF token and bearer header, on a seeded store."""
    seeded = seed(sessions)
    client = signed_in("admin", "root")
    bearer = {"Authorization": f"Bearer {create_token(sessions, 'root', 'walk')}"}
    return client, csrf_token(client), bearer, seeded


Admin = tuple[FlaskClient, str, dict[str, str], dict[str, int]]


def _urls(rule: Rule) -> Iterator[str]:
    """The rule with benign values, then with each hostile value in each variable."""
    names = ARGUMENT.findall(rule.rule)

    def build(values: dict[str, str]) -> str:
        return ARGUMENT.sub(lambda m: values[m.group(1)], rule.rule)

    benign = dict.fromkeys(names, "1")
    yield build(benign)
    for name in names:
        for value in HOSTILE_SEGMENTS:
            yield build({**benign, name: value})


def _status(
    client: FlaskClient,
    method: str,
    url: str,
    csrf: str,
    bearer: dict[str, str],
    form: dict[str, str] | None = None,
) -> str:
    """The response's status code, or the exception that TESTING lets through (a 500)."""
    headers = {"X-CSRF-Token": csrf, **(bearer if url.startswith("/api/") else {})}
    data = {"csrf_token": csrf, **(form or {})}
    try:
        response = client.open(url, method=method, headers=headers, data=data)
    except Exception as exc:  # with TESTING, Flask re-raises what would be a 500
        return f"500 {type(exc).__name__}: {str(exc)[:80]}"
    return str(response.status_code)


EVERY_KEY = "*"


class _ReadKeys(ImmutableMultiDict[str, str]):
    """Query arguments and form fields that note which keys the route read
    (EVERY_KEY when it enumerated them)."""

    read: ClassVar[set[str]] = set()

    def __getitem__(self, key: str) -> str:
        self.read.add(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None, type: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default, type)

    def getlist(self, key: str, type: Any = None) -> Any:
        self.read.add(key)
        return super().getlist(key, type)

    def __contains__(self, key: object) -> bool:
        self.read.add(str(key))
        return super().__contains__(key)

    def _every(self) -> None:
        self.read.add(EVERY_KEY)

    def __iter__(self) -> Iterator[str]:
        self._every()
        return super().__iter__()

    def keys(self) -> Any:
        self._every()
        return super().keys()

    def items(self, multi: bool = False) -> Any:
        self._every()
        return super().items(multi)

    def values(self) -> Any:
        self._every()
        return super().values()

    def lists(self) -> Any:
        self._every()
        return super().lists()

    def listvalues(self) -> Any:
        self._every()
        return super().listvalues()

    def to_dict(self, flat: bool = True) -> Any:
        self._every()
        return super().to_dict(flat)

    def copy(self) -> Any:
        self._every()
        return super().copy()


def _noting_reads(app: Flask) -> None:
    """Make the app's requests note the query and form keys each route reads."""
    request_class = app.request_class
    app.request_class = type(
        "NotingRequest", (request_class,), {"parameter_storage_class": _ReadKeys}
    )


Request = tuple[str, str, dict[str, str] | None]


def _keyed(
    method: str, benign: str, names: Iterable[str], values: list[str], in_form: bool
) -> Iterator[tuple[str, list[Request]]]:
    """Per key: the key and its hostile requests, the first of which finds out whether the
    route reads it."""
    for name in names:
        yield (
            name,
            [
                (method, benign, {name: value})
                if in_form
                else (method, f"{benign}?{name}={value}", None)
                for value in values
            ],
        )


def _requests(rule: Rule) -> Iterator[tuple[str | None, list[Request]]]:
    """The hostile requests to the rule, in groups: (None, requests sent whatever happens)
    or (key, requests of which all but the first go only to a route that reads the key)."""
    methods = sorted((rule.methods or set()) - {"HEAD", "OPTIONS"})
    benign = next(_urls(rule))
    for method in methods:
        yield None, [(method, url, None) for url in _urls(rule)]
        if method == "GET" and "<" not in rule.rule:  # filters belong to lists
            yield from _keyed(method, benign, PARAMETERS, HOSTILE_VALUES, in_form=False)
        elif not rule.endpoint.startswith("auth."):  # sign-in has tests of its own
            yield from _keyed(method, benign, FORM_FIELDS, HOSTILE_TEXT, in_form=True)


@pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
def test_every_route_answers_hostile_input_without_a_5xx(app: Flask, admin: Admin) -> None:
    client, csrf, bearer, _ = admin
    _noting_reads(app)
    failures: list[str] = []
    read: set[tuple[str, str]] = set()

    def send(method: str, url: str, form: dict[str, str] | None) -> None:
        status = _status(client, method, url, csrf, bearer, form)
        if status.startswith("5"):
            failures.append(f"{method} {url[:120]} {form!r:.60} -> {status}")

    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("auth.logout"):  # would end the admin's session mid-walk
            continue
        for key, requests in _requests(rule):
            if key is None:
                for request in requests:
                    send(*request)
                continue
            _ReadKeys.read.clear()
            send(*requests[0])
            if key in _ReadKeys.read or EVERY_KEY in _ReadKeys.read:
                read.add((rule.rule, key))
                for request in requests[1:]:
                    send(*request)
    assert not failures, "\n".join(failures)
    assert client.get("/users").status_code == 200  # still signed in: every request counted
    # The probe sees reads: the filters of the incident list and the notes of approvals.
    assert {("/incidents", "status"), ("/incidents", "q")} <= read, sorted(read)
    assert any(key == "note" for _, key in read), sorted(read)


BOTH_STORES = pytest.mark.parametrize("database_url", ["sqlite", "postgresql"], indirect=True)
STRANGE_IDS = [
    "/incidents/99999999999999999999",
    f"/incidents/{2**31}",
    f"/incidents/1/runs/{2**63}/artifacts.tar.gz",
    f"/api/v1/incidents/{2**31}",
    f"/api/v1/runs/{2**40}",
    "/playbooks/runs/%00",
    "/playbooks/runs/" + "x" * 300,
    "/playbooks/runs/%C3%BC/progress",
]


@BOTH_STORES
def test_huge_or_strange_ids_are_404(admin: Admin) -> None:
    client, csrf, bearer, _ = admin
    for url in STRANGE_IDS:
        response = client.get(url, headers=bearer)
        assert response.status_code == 404, url
    for verb in ("approve", "reject"):
        page = client.post(f"/approvals/{2**64}/{verb}", data={"csrf_token": csrf})
        assert page.status_code == 404
        assert "404" in page.text
        api = client.post(f"/api/v1/approvals/{2**31}/{verb}", headers=bearer)
        assert api.status_code == 404 and api.json is not None


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("since=0001-01-01T00:00:00%2B14:00", "since"),
        ("until=9999-12-31T23:59:59-12:00", "until"),
        ("since=0001-01-01T00:00:00%2B00:01", "since"),
    ],
)
def test_dates_beyond_the_calendar_are_400_naming_them(
    admin: Admin, query: str, named: str
) -> None:
    client, _, bearer, _ = admin
    response = client.get(f"/api/v1/incidents?{query}", headers=bearer)
    assert response.status_code == 400, response.text
    assert response.json is not None and named in response.json["error"]


@BOTH_STORES
def test_dates_at_the_calendar_edges_still_work(admin: Admin) -> None:
    client, _, bearer, _ = admin
    query = "since=0001-01-01T00:00:00Z&until=9999-12-31T23:59:59Z"
    response = client.get(f"/api/v1/incidents?{query}", headers=bearer)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("verb", ["approve", "reject"])
@pytest.mark.parametrize(
    ("body", "status", "named"),
    [
        ('{"note": ' + "[" * 100_000 + "]" * 100_000 + "}", 413, "large"),
        ('{"note": ' + "[" * 1000 + "]" * 1000 + "}", 400, "deep"),
        ('{"note": ' + '{"a": ' * 200 + "1" + "}" * 200 + "}", 400, "deep"),
        ('{"note": "' + "x" * 20_000 + '"}', 413, "large"),
    ],
)
def test_deep_or_large_json_bodies_are_refused(
    admin: Admin, verb: str, body: str, status: int, named: str
) -> None:
    client, _, bearer, _ = admin
    response = client.post(
        f"/api/v1/approvals/1/{verb}",
        headers=bearer,
        data=body,
        content_type="application/json",
    )
    assert response.status_code == status, response.text
    assert response.json is not None and named in response.json["error"]


def test_brackets_inside_strings_do_not_count_as_depth(admin: Admin) -> None:
    client, _, bearer, seeded = admin
    response = client.post(
        f"/api/v1/approvals/{seeded['pending']}/approve",
        headers=bearer,
        json={"note": "[" * 200 + "{" * 200 + '"\\'},
    )
    assert response.status_code == 200, response.text
    assert response.json is not None and response.json["note"].startswith("[[[")


@BOTH_STORES
def test_notes_the_store_cannot_hold_are_400(admin: Admin) -> None:
    client, csrf, bearer, seeded = admin
    pending = seeded["pending"]
    for note in ("a\x00b", "\udcff", "bell\x07"):
        api = client.post(
            f"/api/v1/approvals/{pending}/approve", headers=bearer, json={"note": note}
        )
        assert api.status_code == 400, api.text
        assert api.json is not None and "note" in api.json["error"]
    page = client.post(f"/approvals/{pending}/approve", data={"csrf_token": csrf, "note": "a\x00b"})
    assert page.status_code == 400
    assert "control characters" in page.text
    fine = client.post(
        f"/api/v1/approvals/{pending}/approve", headers=bearer, json={"note": "line 1\nline 2"}
    )
    assert fine.status_code == 200, fine.text
