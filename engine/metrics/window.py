"""One host's samples of one kind, as held between ticks: two arrays of doubles.

Pure. A source that keeps every host's windows (engine/metrics/held.py) holds about 140
samples per host over the four kinds once the windows are full. As named tuples, with their
own value floats and the tuple that lists them, a sample took about 130 bytes (tracemalloc,
tests/engine/test_metrics_window.py): 180 MB at 10,000 hosts. Here it takes 16 (23 with
each window's own objects), and arrays are not objects the garbage collector walks.
A ``Window`` is a read-only sequence of ``Sample``: each item is made when read, and the
evaluator reads the newest one or two of a calm host.
"""

from __future__ import annotations

from array import array
from collections.abc import Iterable, Iterator, Sequence
from typing import overload

from engine.types import Sample

_sample = tuple.__new__  # Sample(host, ts, value) without its keyword handling


class Window(Sequence[Sample]):
    """A host's samples, oldest first; never changed once made (batches share it)."""

    __slots__ = ("_ts", "_values", "host")

    def __init__(self, host: str, ts: array[float], values: array[float]) -> None:
        self.host = host
        self._ts = ts
        self._values = values

    @classmethod
    def of(cls, host: str, samples: Iterable[Sample]) -> Window:
        """A window of these samples (all of ``host``), in their order."""
        ts, values = _arrays(samples)
        return cls(host, ts, values)

    @property
    def timestamps(self) -> Sequence[float]:
        """The samples' timestamps, oldest first (for bisecting; not to be changed)."""
        return self._ts

    def kept(self, first: int, last: int, new: Sequence[Sample]) -> Window:
        """The samples from index ``first`` up to ``last``, then ``new``, as a new window."""
        ts, values = self._ts[first:last], self._values[first:last]
        # Concatenated, not appended: an appended array keeps room to grow.
        if len(new) == 1:  # the usual tick: the newest value
            _, stamp, value = new[0]
            return Window(self.host, ts + array("d", (stamp,)), values + array("d", (value,)))
        if new:
            more_ts, more_values = _arrays(new)
            ts, values = ts + more_ts, values + more_values
        return Window(self.host, ts, values)

    def __len__(self) -> int:
        return len(self._ts)

    @overload
    def __getitem__(self, index: int) -> Sample: ...

    @overload
    def __getitem__(self, index: slice) -> tuple[Sample, ...]: ...

    def __getitem__(self, index: int | slice) -> Sample | tuple[Sample, ...]:
        if isinstance(index, slice):
            host = self.host
            return tuple(
                _sample(Sample, (host, ts, value))
                for ts, value in zip(self._ts[index], self._values[index], strict=True)
            )
        return _sample(Sample, (self.host, self._ts[index], self._values[index]))

    def __iter__(self) -> Iterator[Sample]:
        host = self.host
        for ts, value in zip(self._ts, self._values, strict=True):
            yield _sample(Sample, (host, ts, value))

    def __reversed__(self) -> Iterator[Sample]:
        host, ts, values = self.host, self._ts, self._values
        for index in range(len(ts) - 1, -1, -1):
            yield _sample(Sample, (host, ts[index], values[index]))

    def __eq__(self, other: object) -> bool:
        """Equal to any sequence of the same samples (a tuple of them, another window)."""
        if isinstance(other, Window):
            return (self.host, self._ts, self._values) == (other.host, other._ts, other._values)
        if isinstance(other, tuple | list):
            if len(other) != len(self):
                return False
            return all(mine == theirs for mine, theirs in zip(self, other, strict=True))
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # equal to tuples, so not hashable like them

    def __repr__(self) -> str:
        return f"Window({self.host!r}, {len(self)} samples)"


def _arrays(samples: Iterable[Sample]) -> tuple[array[float], array[float]]:
    """The samples' timestamps and values, each an array of exactly their size."""
    listed = samples if isinstance(samples, tuple | list) else list(samples)
    return array("d", [s.ts for s in listed]), array("d", [s.value for s in listed])
