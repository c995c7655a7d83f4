"""The lab's one error: something it needs is missing or failed; the message names it."""

from __future__ import annotations

from engine.errors import AutoSREError


class LabError(AutoSREError):
    """The lab cannot be brought up, reached or taken down as asked; the CLI exits 2."""
