"""The one redaction module: secret values in every encoding, URL credentials, secret names."""

from __future__ import annotations

import io
import json
import logging
import shlex
from urllib.parse import quote, quote_plus

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from engine.redact import (
    REDACTED,
    RedactingFilter,
    Redactor,
    encodings,
    looks_secret,
    redact_url,
    secrets_in_environment,
    url_password,
)

AWKWARD = "p\"a\\s's wörd/€&=+ %"


@pytest.mark.parametrize(
    "name",
    [
        "GEMINI_API_KEY",
        "db_password",
        "ansible_become_password",
        "ansible_ssh_pass",
        "X-Auth-Token",
    ],
)
def test_credential_names_look_secret(name: str) -> None:
    assert looks_secret(name)


@pytest.mark.parametrize("name", ["host", "team", "passenger", "keyboard", "SSH_AUTH_SOCK"])
def test_ordinary_names_do_not(name: str) -> None:
    assert not looks_secret(name)


def test_url_password_and_redact_url() -> None:
    assert url_password("http://user:pw1234@prom:9090/x") == "pw1234"
    assert url_password("http://prom:9090") is None
    assert redact_url("postgresql://app:s3cr%40t@db/x") == f"postgresql://app:{REDACTED}@db/x"
    assert redact_url("http://prom:9090/") == "http://prom:9090/"


def test_environment_secrets_cover_secret_names_and_url_passwords() -> None:
    found = secrets_in_environment(
        {
            "GEMINI_API_KEY": "gk-canary-1",
            "AUTOSRE_PROMETHEUS_URL": "http://user:prom%40pw@127.0.0.1:9090",
            "AUTOSRE_DATABASE_URL": "postgresql://app:dbpw-canary@db/x",
            "GIT_URL": "https://ghp_0123456789abcdefghij@github.com/x",
            "PLAIN_DB": "postgresql://postgres@db/x",  # a user name is no secret
            "HOME": "/root",
        }
    )
    assert found == {
        "gk-canary-1",
        "prom%40pw",
        "prom@pw",
        "dbpw-canary",
        "ghp_0123456789abcdefghij",
    }


def test_every_encoding_of_a_secret_is_redacted() -> None:
    redactor = Redactor([AWKWARD])
    forms = [
        AWKWARD,
        json.dumps(AWKWARD),
        json.dumps(json.dumps(AWKWARD)),
        json.dumps(AWKWARD, ensure_ascii=False),
        shlex.quote(AWKWARD),
        quote(AWKWARD, safe=""),
        quote_plus(AWKWARD),
        quote(AWKWARD, safe="").lower(),
        repr(AWKWARD),
    ]
    for form in forms:
        out = redactor.text(f"before {form} after")
        assert all(encoded not in out for encoded in encodings(AWKWARD)), (form, out)
        assert out.startswith("before ") and out.endswith(" after")


def test_credentials_by_shape_need_no_known_value() -> None:
    redactor = Redactor()
    out = redactor.text(
        'url=https://bob:hunter22@host/x DB_PASSWORD=abc123 {"api_key": "k-9", "team": "web"}'
    )
    assert "hunter22" not in out and "abc123" not in out and "k-9" not in out
    assert "bob:" in out and '"team": "web"' in out


def test_value_redacts_nested_data_and_secret_named_fields() -> None:
    redactor = Redactor(["tok-5555"])
    data = {
        "msg": "token tok-5555",
        "res": {"password": "x-1", "secret": True, "items": ["a tok-5555", 3]},
    }
    assert redactor.value(data) == {
        "msg": f"token {REDACTED}",
        "res": {"password": REDACTED, "secret": True, "items": [f"a {REDACTED}", 3]},
    }


def test_a_marker_never_completes_a_secret_with_asterisks() -> None:
    # "ab" + the marker would hold "ab**" again: passes repeat until nothing is left.
    assert "ab**" not in Redactor(["ab**"]).text("abab**")


def test_with_secrets_adds_and_repr_hides() -> None:
    base = Redactor(["first-secret"])
    more = base.with_secrets(["second-secret"])
    assert more.secrets == {"first-secret", "second-secret"}
    assert base.with_secrets([]) is base
    assert "first-secret" not in repr(more)


def test_logging_filter_redacts_messages_arguments_and_tracebacks() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RedactingFilter(Redactor(["log-canary-77"])))
    log = logging.getLogger("test.redact")
    log.addHandler(handler)
    log.propagate = False
    try:
        log.warning("url %s", "http://u:log-canary-77@h/")
        try:
            raise RuntimeError("boom log-canary-77")
        except RuntimeError:
            log.exception("failed")
    finally:
        log.removeHandler(handler)
    assert "log-canary-77" not in stream.getvalue()
    assert "boom" in stream.getvalue()


SECRETS = st.text(
    alphabet=st.sampled_from(list("ab'\"\\ /%+&=é€\U0001f511*\n\t<>{}")) | st.characters(),
    min_size=4,
    max_size=24,
)


@given(secret=SECRETS, before=st.text(max_size=30), after=st.text(max_size=30), data=st.data())
def test_no_encoding_of_a_secret_survives(
    secret: str, before: str, after: str, data: st.DataObject
) -> None:
    forms = sorted(encodings(secret))
    assume(all(form not in REDACTED for form in forms))  # "****" is the marker itself
    form = data.draw(st.sampled_from(forms))
    out = Redactor([secret]).text(before + form + after)
    assert not [encoded for encoded in forms if encoded in out]
