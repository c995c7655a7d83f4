"""URL converters and text checks, so that no route hands the store a value it cannot take.

Ids are INTEGER columns (at most 2**31 - 1 on PostgreSQL): ``<id:incident_id>`` matches only
1..MAX_ID written in plain ASCII digits, anything else is a 404 before a query is made.
``<ident:ident>`` matches only what the executor accepts as a run ident. A blueprint calls
``use_converters(bp)`` before declaring its routes. ``text_problem`` says why free text
(a note) cannot be stored: PostgreSQL refuses NUL, no database takes a lone surrogate.
"""

from __future__ import annotations

import re

from flask import Blueprint
from flask.sansio.blueprints import BlueprintSetupState
from werkzeug.routing import BaseConverter, ValidationError

MAX_ID = 2**31 - 1  # PostgreSQL's INTEGER; SQLite's is wider, the store's columns are not
# Control characters other than tab and line breaks, and lone UTF-16 surrogates (from JSON).
_UNSTORABLE = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ud800-\udfff]")


class IdConverter(BaseConverter):
    """A positive id of at most MAX_ID: at most ten ASCII digits, no sign, no leading zero."""

    regex = r"[1-9][0-9]{0,9}"

    def to_python(self, value: str) -> int:
        """The id as an int; a ValidationError (so a 404) beyond MAX_ID."""
        number = int(value)
        if number > MAX_ID:
            raise ValidationError
        return number

    def to_url(self, value: int) -> str:
        """The id as written in a URL."""
        return str(int(value))


class IdentConverter(BaseConverter):
    """A run ident: one safe path component, as ``engine.execute.runner`` makes and accepts them."""

    regex = r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}"


CONVERTERS: dict[str, type[BaseConverter]] = {"id": IdConverter, "ident": IdentConverter}


def _register(state: BlueprintSetupState) -> None:
    for name, converter in CONVERTERS.items():
        state.app.url_map.converters.setdefault(name, converter)


def use_converters(bp: Blueprint) -> None:
    """Make ``id`` and ``ident`` known to the app before the blueprint's rules are added."""
    bp.record_once(_register)


def text_problem(name: str, value: str) -> str | None:
    """Why the text cannot be stored, naming it (a control character...), or None if it can."""
    if _UNSTORABLE.search(value):
        return f"{name} must not contain control characters or unpaired surrogates"
    return None
