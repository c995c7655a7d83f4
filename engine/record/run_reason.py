"""Why a playbook was run by hand: a reason (1-200 printable characters) and an optional
ticket reference such as ``INC-1234``. Checked before anything runs; refused, never cleaned.
"""

from __future__ import annotations

import re

from engine.errors import InputError

MAX_REASON = 200
NO_REASON = "(none given)"  # what a CLI run without --reason records: scripts keep working
TICKET = re.compile(r"[A-Za-z0-9._:/#-]{1,64}")


class RunReasonError(InputError):
    """A reason or ticket that cannot be recorded; ``field`` names which (a 400, or exit 2)."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field


def check_reason(reason: str | None, *, required: bool) -> str:
    """The reason stripped; NO_REASON when absent and not required; else RunReasonError.

    Control characters (terminal escapes, NUL, new lines) are refused: a reason is shown in
    terminals and on pages, and is one line in the audit log.
    """
    text = (reason or "").strip()
    if not text:
        if required:
            raise RunReasonError("reason", "is required: say why this runs by hand")
        return NO_REASON
    if len(text) > MAX_REASON:
        raise RunReasonError("reason", f"is too long (at most {MAX_REASON} characters)")
    if not text.isprintable():  # Unicode's Cc, Cf, Cs, Zl, Zp...: escapes, NUL, surrogates
        raise RunReasonError("reason", "must be printable (no control characters or escapes)")
    return text


def check_ticket(ticket: str | None) -> str | None:
    """The ticket reference stripped, None when absent, or RunReasonError naming ``ticket``."""
    text = (ticket or "").strip()
    if not text:
        return None
    if TICKET.fullmatch(text) is None:
        raise RunReasonError(
            "ticket", "must be 1-64 characters of letters, digits and . _ : / # - (like INC-1234)"
        )
    return text
