"""What one tick of the engine saw and did (engine/loop.py), for logs, tests and the bench."""

from __future__ import annotations

from dataclasses import dataclass

from engine.types import HostState


@dataclass(frozen=True, slots=True)
class TickReport:
    """What one tick saw and did (for logs, tests and the bench)."""

    at: float
    duration: float
    states: dict[str, HostState]
    launched: tuple[str, ...]  # run idents started this tick
    # When a rising host's sustain window may first complete (None: no host rising), and how
    # often to tick from then on: the scheduler polls so the decision comes with the sample.
    due: float | None = None
    poll: float = 1.0
