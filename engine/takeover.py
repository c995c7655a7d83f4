"""The hosts this engine replica acts on, tick by tick: its share of the fleet
(engine/lease/share.py), with the incidents of hosts it gains taken over and those of hosts
it lost let go.

A host gained is settled before it is acted on: the runs left in flight on it are reconciled
(engine/reconcile.py), its active incident's track is resumed, and a host whose run still
has a live owner (a run by hand; a dead replica's run before its deadline) waits, out of
the tick, until that run's lease is free: never two runs on one host, never a blind re-run.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Container, MutableMapping
from typing import Protocol

from engine.execute.locks import Locks
from engine.incident.life import Track
from engine.lease.share import ShareChange
from engine.record.recorder import Recorder
from engine.resume import resume_tracks

log = logging.getLogger("autosre.engine")


class HostShare(Protocol):
    """The hosts of one replica (engine/lease/share.py)."""

    replica: str

    def hosts(self) -> frozenset[str]:
        """The hosts it may act on now."""

    def sync(self, keep: Collection[str] = (), *, force: bool = False) -> ShareChange:
        """Renew and balance; what changed."""

    def close(self) -> None:
        """Hand the hosts back."""


class Takeover:
    """Keeps the engine's tracks in step with the hosts this replica holds."""

    def __init__(
        self,
        share: HostShare,
        *,
        recorder: Recorder,
        hosts: Container[str],
        kinds: Container[str],
        locks: Locks,
        executor: object,
        tracks: MutableMapping[str, Track],
    ) -> None:
        self.share = share
        self.recorder = recorder
        self.hosts = hosts
        self.kinds = kinds
        self.locks = locks
        self.executor = executor
        self.tracks = tracks
        self.waiting: frozenset[str] = frozenset()  # gained, with a run still owned elsewhere
        self._started = False

    def sync(self, now: float, *, force: bool = False) -> frozenset[str]:
        """Renew this replica's hosts, take over the ones gained; the hosts to act on now."""
        change = self.share.sync(keep=self.tracks.keys(), force=force)
        for host in change.lost:
            track = self.tracks.pop(host, None)
            if track is not None:
                log.warning(
                    "%s: its lease went to another replica; incident %d is in its hands now",
                    host,
                    track.incident_id,
                )
        taking = self.waiting | change.gained
        if taking or not self._started:
            # At start, on one machine, every run the store calls running is settled, its
            # hosts still in the inventory or not.
            whole = not self._started and change.gained == _everything(self.share)
            resumed = resume_tracks(
                self.recorder,
                self.hosts,
                self.kinds,
                now,
                locks=self.locks,
                executor=self.executor,
                taking=None if whole else taking,
            )
            self.tracks.update(resumed.tracks)
            if resumed.deferred - self.waiting:
                log.info(
                    "waiting for the runs in flight on %s to end before taking them over",
                    ", ".join(sorted(resumed.deferred - self.waiting)[:10]),
                )
            self.waiting = resumed.deferred
            self._started = True
        return self.share.hosts() - self.waiting


def _everything(share: HostShare) -> frozenset[str] | None:
    """Every host, for a share that holds the whole fleet (None for a leased share)."""
    whole = getattr(share, "everything", None)
    return whole if isinstance(whole, frozenset) else None
