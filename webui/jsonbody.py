"""Small JSON request bodies, parsed safely: size and nesting are checked before ``json.loads``.

``json.loads`` recurses once per level of nesting, so a body of a few KB of brackets can
raise RecursionError; counting brackets first (outside strings) makes that a 400.
"""

from __future__ import annotations

import json
from typing import Any, Final

from flask import Request

from engine.errors import InputError

MAX_BODY = 8 * 1024  # bytes: a note of 500 characters, even all \uXXXX escapes, fits
MAX_DEPTH = 8
QUOTE, BACKSLASH = ord('"'), ord("\\")
OPENING, CLOSING = frozenset(b"[{"), frozenset(b"]}")
NO_BODY: Final = object()  # what read_json returns for an empty body (JSON null is None)


class BodyError(InputError):
    """A body the API refuses, with the HTTP status that says why (400, 413 or 415)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def nesting_depth(raw: bytes) -> int:
    """How deeply arrays and objects nest in the JSON text (brackets inside strings excluded)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in raw:  # one pass: a regex for strings backtracks on unterminated ones
        if in_string:
            if escaped:
                escaped = False
            elif byte == BACKSLASH:
                escaped = True
            elif byte == QUOTE:
                in_string = False
        elif byte == QUOTE:
            in_string = True
        elif byte in OPENING:
            depth += 1
            deepest = max(deepest, depth)
        elif byte in CLOSING:
            depth = max(0, depth - 1)
    return deepest


def read_json(request: Request, *, max_bytes: int = MAX_BODY, max_depth: int = MAX_DEPTH) -> Any:
    """The request's JSON body, or NO_BODY when it has none; BodyError for anything unsafe."""
    if request.content_length is not None and request.content_length > max_bytes:
        raise BodyError(f"the body is too large (at most {max_bytes} bytes)", 413)
    raw = request.stream.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise BodyError(f"the body is too large (at most {max_bytes} bytes)", 413)
    if not raw.strip():
        return NO_BODY
    if request.mimetype != "application/json":
        raise BodyError(f"the body must be application/json, not {request.mimetype or 'none'}", 415)
    if nesting_depth(raw) > max_depth:
        raise BodyError(f"the body is nested too deep (at most {max_depth} levels)")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BodyError(f"malformed JSON body: {str(exc)[:100]}") from None
