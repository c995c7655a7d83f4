"""Redaction: the one place that decides what a secret looks like, in every encoding it takes.

Used by the store, the logs, the audit log, run artifacts, live progress, prompts and
the API. A ``Redactor`` knows secret *values* (model keys, the session key, passwords
in URLs, ``secret: true`` vars, inventory variables named like a password) and finds
them raw, JSON-escaped (once or twice), as a Python repr, shell-quoted or URL-encoded.
Independently of the values it knows, it hides credentials inside URLs and the values
of fields whose names look secret.
"""

from __future__ import annotations

import json
import logging
import re
import shlex
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote, quote_plus, unquote, urlsplit, urlunsplit

REDACTED = "********"
MIN_SECRET_LENGTH = 4  # shorter values would garble ordinary text wherever they occur
MIN_BARE_TOKEN_LENGTH = 16  # a URL's bare userinfo this long is a token, not a user name
MAX_PASSES = 16  # text() repeats until nothing changes; see Redactor.text

# Names of variables and fields that hold credentials (API_KEY, db_password, X-Auth-Token...).
_SECRET_NAME = re.compile(
    r"(?i)(pass(word|wd|phrase)?($|[_-])|secret|token|api[_-]?key|private[_-]?key|"
    r"credential|authorization|auth[_-]?key|access[_-]?key|session[_-]?key)"
)
# user:password@ (or a bare token@) inside a URL of any scheme.
_URL_USERINFO = re.compile(r"(?P<scheme>\b[A-Za-z][A-Za-z0-9+.-]*://)(?P<info>[^\s/@'\"]+)@")
_PERCENT_HEX = re.compile(r"%[0-9A-F]{2}")
# NAME=value (an environment dump, a command line) where NAME looks secret.
_ASSIGNMENT = re.compile(r"(?P<name>\b[A-Za-z_][A-Za-z0-9_]*)(?P<sep>=)(?P<value>[^\s'\",;&]+)")
# "name": "value" (JSON or a Python dict shown as text) where name looks secret.
_QUOTED_FIELD = re.compile(
    r"""(?P<name>["'][A-Za-z_][A-Za-z0-9_.-]*["'])(?P<sep>\s*:\s*)"""
    r"""(?P<value>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')"""
)


def looks_secret(name: str) -> bool:
    """True when a variable or field name says it holds a credential."""
    return bool(_SECRET_NAME.search(name))


def url_password(url: str) -> str | None:
    """The password (or bare token) inside a URL's userinfo, if there is one."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if "@" not in parts.netloc:
        return None
    info = parts.netloc.rsplit("@", 1)[0]
    user, sep, password = info.partition(":")
    return password if sep else user or None


def redact_url(url: str) -> str:
    """The URL with the password (or bare token) of its userinfo replaced; the user is kept."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return _URL_USERINFO.sub(_hide_userinfo, url)
    if "@" not in parts.netloc:
        return url
    info, host = parts.netloc.rsplit("@", 1)
    user, sep, _ = info.partition(":")
    safe = f"{user}:{REDACTED}" if sep else REDACTED
    return urlunsplit(parts._replace(netloc=f"{safe}@{host}"))


def _hide_userinfo(match: re.Match[str]) -> str:
    user, sep, _ = match.group("info").partition(":")
    safe = f"{user}:{REDACTED}" if sep else REDACTED
    return f"{match.group('scheme')}{safe}@"


def secrets_in_environment(env: Mapping[str, str]) -> set[str]:
    """Values of variables named like credentials, and passwords inside URL-valued variables."""
    found: set[str] = set()
    for name, value in env.items():
        if not value:
            continue
        if looks_secret(name):
            found.add(value)
        if "://" in value:
            found |= _url_secrets(value)
    return found


def _url_secrets(value: str) -> set[str]:
    infos = [m.group("info") for m in _URL_USERINFO.finditer(value)]
    try:
        netloc = urlsplit(value.strip()).netloc
    except ValueError:
        netloc = ""
    if "@" in netloc:
        infos.append(netloc.rsplit("@", 1)[0])  # a password may hold "@" itself
    found: set[str] = set()
    for info in infos:
        user, sep, secret = info.partition(":")
        if not sep:
            # A bare user name (postgres@db) is no secret; a long bare token (ghp_...@) is.
            if len(user) < MIN_BARE_TOKEN_LENGTH:
                continue
            secret = user
        if secret:
            found |= {secret, unquote(secret)}  # as written in the URL, and as the server sees it
    return found


def encodings(secret: str) -> set[str]:
    """Every form a secret value can take in text the engine handles."""
    forms = {secret}
    for ascii_only in (True, False):
        once = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        forms.add(once)
        forms.add(json.dumps(once, ensure_ascii=ascii_only)[1:-1])  # JSON inside JSON
    forms.add(repr(secret)[1:-1])
    quoted = shlex.quote(secret)
    forms.add(quoted)
    if quoted.startswith("'") and quoted.endswith("'"):
        forms.add(quoted[1:-1])
    for url_form in _url_encodings(secret):
        forms.add(url_form)
        forms.add(_PERCENT_HEX.sub(lambda m: m.group(0).lower(), url_form))
    return {form for form in forms if len(form) >= MIN_SECRET_LENGTH}


def _url_encodings(secret: str) -> list[str]:
    # Undecodable environment bytes arrive as surrogate escapes: encode them back.
    try:
        return [
            quote(secret, safe="", errors="surrogateescape"),
            quote(secret, errors="surrogateescape"),
            quote_plus(secret, errors="surrogateescape"),
        ]
    except UnicodeEncodeError:
        return []  # a lone surrogate no URL can carry


class Redactor:
    """Replaces known secret values (in every encoding) and credential-shaped fields in data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = frozenset(s for s in secrets if isinstance(s, str) and s)
        forms: set[str] = set()
        for secret in self._secrets:
            if len(secret) >= MIN_SECRET_LENGTH:
                forms |= encodings(secret)
        # A form inside the marker (all asterisks) would be found again in every marker.
        forms = {form for form in forms if form not in REDACTED}
        # Longest first, so a secret that contains another is replaced whole.
        ordered = sorted(forms, key=lambda form: (-len(form), form))
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def __repr__(self) -> str:
        return f"Redactor({len(self._secrets)} secrets)"  # never the values

    @property
    def secrets(self) -> frozenset[str]:
        """The secret values this redactor knows (for building another one)."""
        return self._secrets

    def with_secrets(self, more: Iterable[str]) -> Redactor:
        """A redactor that also knows ``more`` (a run's own secret vars, say)."""
        extra = [s for s in more if s]
        return Redactor([*self._secrets, *extra]) if extra else self

    def text(self, text: str) -> str:
        """The text with known secrets, URL credentials and secret-named values hidden."""
        # A marker can complete a secret that has asterisks in it ("ab" + "********"
        # holds "ab**"), so passes repeat until nothing changes. Each change replaces
        # a piece holding a character other than "*", so this ends quickly.
        for _ in range(MAX_PASSES):
            redacted = self._once(text)
            if redacted == text:
                break
            text = redacted
        return text

    def _once(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub(REDACTED, text)
        text = _URL_USERINFO.sub(_hide_userinfo, text)
        text = _ASSIGNMENT.sub(_hide_assignment, text)
        return _QUOTED_FIELD.sub(_hide_quoted_field, text)

    def value(self, data: Any) -> Any:
        """A copy of JSON-like data with every string redacted and secret-named fields hidden."""
        if isinstance(data, str):
            return self.text(data)
        if isinstance(data, list | tuple):
            return [self.value(item) for item in data]
        if isinstance(data, dict):
            hidden: dict[Any, Any] = {}
            for key, item in data.items():
                name = self.text(key) if isinstance(key, str) else key
                if isinstance(key, str) and looks_secret(key) and _has_value(item):
                    hidden[name] = REDACTED
                else:
                    hidden[name] = self.value(item)
            return hidden
        return data


def _has_value(item: Any) -> bool:
    # Flags and counters (secret: true, input_tokens: 12) say nothing secret.
    return bool(item) and isinstance(item, str | dict | list)


def _hide_assignment(match: re.Match[str]) -> str:
    if not looks_secret(match.group("name")) or match.group("value") == REDACTED:
        return match.group(0)
    return f"{match.group('name')}{match.group('sep')}{REDACTED}"


def _hide_quoted_field(match: re.Match[str]) -> str:
    value = match.group("value")
    if not looks_secret(match.group("name").strip("\"'")) or len(value) <= 2:
        return match.group(0)
    quote_char = value[0]
    return f"{match.group('name')}{match.group('sep')}{quote_char}{REDACTED}{quote_char}"


class RedactingFilter(logging.Filter):
    """A logging filter that redacts every record's final message (arguments included)."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def filter(self, record: logging.LogRecord) -> bool:
        """Render the message, redact it, and keep the record."""
        message = record.getMessage()
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        record.msg = self.redactor.text(message)
        record.args = None
        if record.exc_text:
            record.exc_text = self.redactor.text(record.exc_text)
        if record.stack_info:
            record.stack_info = self.redactor.text(record.stack_info)
        return True
