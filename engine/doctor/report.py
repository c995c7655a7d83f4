"""What a doctor check found: pure values, and how a report reads and exits."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

SHOWN = 10  # names listed in one line before "and N more"


class Outcome(enum.StrEnum):
    """A check passed, failed, or was not run (and why is in its detail)."""

    OK = "ok"
    FAIL = "FAIL"
    SKIP = "skip"


@dataclass(frozen=True, slots=True)
class Finding:
    """One line of the report: which check, its outcome, and what it saw."""

    check: str
    outcome: Outcome
    detail: str

    def as_json(self) -> dict[str, Any]:
        """The finding as a JSON object."""
        return {"check": self.check, "outcome": self.outcome.value, "detail": self.detail}


def ok(check: str, detail: str) -> Finding:
    """A passed check."""
    return Finding(check, Outcome.OK, detail)


def fail(check: str, detail: str) -> Finding:
    """A failed check."""
    return Finding(check, Outcome.FAIL, detail)


def skip(check: str, detail: str) -> Finding:
    """A check not run, and why."""
    return Finding(check, Outcome.SKIP, detail)


def names(items: Iterable[str], shown: int = SHOWN) -> str:
    """``a, b, c`` or ``a, b, ... and 12 more``: a fleet's worth stays one line."""
    listed = sorted(items)
    head = ", ".join(listed[:shown])
    return head if len(listed) <= shown else f"{head} and {len(listed) - shown} more"


@dataclass(frozen=True, slots=True)
class Report:
    """Every finding, in the order the checks were listed."""

    findings: Sequence[Finding]

    @property
    def failed(self) -> list[Finding]:
        """The findings that failed."""
        return [f for f in self.findings if f.outcome is Outcome.FAIL]

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, 1 otherwise (skipped checks do not fail)."""
        return 1 if self.failed else 0

    def summary(self) -> str:
        """One line: the verdict and how many checks passed, failed and were skipped."""
        counts = {o: sum(f.outcome is o for f in self.findings) for o in Outcome}
        verdict = "all checks pass" if not self.failed else f"{counts[Outcome.FAIL]} failed"
        return (
            f"{verdict} ({counts[Outcome.OK]} ok, {counts[Outcome.FAIL]} failed, "
            f"{counts[Outcome.SKIP]} skipped)"
        )

    def lines(self) -> list[str]:
        """One line per finding, then the summary (callers escape them for terminals)."""
        width = max((len(f.check) for f in self.findings), default=0)
        rows = [f"{f.outcome.value:<4}  {f.check:<{width}}  {f.detail}" for f in self.findings]
        return [*rows, self.summary()]

    def as_json(self) -> dict[str, Any]:
        """The report as a JSON object: ok, summary, and each check."""
        return {
            "ok": not self.failed,
            "summary": self.summary(),
            "checks": [f.as_json() for f in self.findings],
        }
