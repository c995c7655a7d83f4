"""The tick's run side: start what the tick decided within the blast radius, and move each
incident on as its host's part of a run ends.

Runs of one action decided in the same tick are batched into one ansible-runner
invocation (engine/execute/launch.py); hosts beyond ``max_concurrent`` or a group's share
wait their turn, recorded as waiting (engine/execute/blast_radius.py). A host's end is
read per host: one that Ansible cannot reach is reported before its batch finishes.

A run's own work (Python, SSH, a restart) reads as CPU on the host it runs on, up to 77 %
of one core in the lab: a high run that began before a run's settle time ended is not
evidence of a new problem until it has lasted a whole sustain window after it.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping

from engine.carry_out import StepRunner
from engine.execute.blast_radius import BlastRadius
from engine.execute.dispatch import RunDispatcher
from engine.execute.launch import Decided, Launcher
from engine.incident.advance import after_run
from engine.incident.life import IncidentStatus, Phase, Track
from engine.incident.steps import Escalate, Note, Retry, Step
from engine.inventory import Inventory
from engine.policy.schema import Policy, SignalRule

BUSY_RETRY = 5.0  # seconds before deciding again on a host that could not start now


class RunStage:
    """Launches the tick's batches and collects the runs' ends, per host."""

    def __init__(
        self,
        *,
        policy: Policy,
        inventory: Inventory,
        launcher: Launcher,
        dispatcher: RunDispatcher,
        steps: StepRunner,
        tracks: MutableMapping[str, Track],
    ) -> None:
        self.policy = policy
        self.launcher = launcher
        self.dispatcher = dispatcher
        self.steps = steps
        self.tracks = tracks
        self.quiet_until: dict[str, float] = {}  # host -> its last engine run's end + settle
        self.blast_radius = BlastRadius(
            max_concurrent=policy.remediation.max_concurrent,
            max_group_percent=policy.remediation.max_group_percent,
            groups={name: host.groups for name, host in inventory.hosts.items()},
        )

    def launch(self, batch: Mapping[str, list[Track]], now: float) -> list[str]:
        """Start (or release) the runs of this batch that the blast radius allows now; the
        idents of the runs started."""
        idents = []
        in_flight = {t.host for t in self.tracks.values() if t.phase is Phase.RUNNING}
        for action, decided in batch.items():
            admitted, waiting = self.blast_radius.admit([t.host for t in decided], in_flight)
            for track in decided:
                if track.host in waiting:
                    self._wait(track, waiting[track.host], now)
            tracks = [t for t in decided if t.host in admitted]
            if not tracks:
                continue
            items = [Decided(t.host, t.incident_id, t.decision_id or 0) for t in tracks]
            launched = self.launcher.launch(action, items, now)
            for track in tracks:
                if track.host in launched.started or track.host in launched.released:
                    track.move(Phase.RUNNING)
                    in_flight.add(track.host)
                elif track.host in launched.stopped:
                    stop: list[Step] = [Escalate(launched.stopped[track.host])]
                    self.steps.run(track, stop, now)
                elif track.host in launched.busy:
                    self._wait(track, launched.busy[track.host], now)
                elif launched.refused is not None:
                    refused: list[Step] = [Escalate(launched.refused, IncidentStatus.FAILED)]
                    self.steps.run(track, refused, now)
            idents += [launched.ident] if launched.ident is not None else []
            idents += launched.released.values()
        return idents

    def collect(self, now: float) -> None:
        """Move on every incident whose host's part of a run ended since the last tick."""
        rem = self.policy.remediation
        longest = max(rule.sustain for rule in self.policy.signals.values())
        for host in [h for h, quiet in self.quiet_until.items() if quiet + longest < now]:
            del self.quiet_until[host]  # long past for every kind
        ended = self.dispatcher.finished()
        for done, (host, result, action) in enumerate(ended):
            track = self.tracks.get(host)
            if track is None or track.phase is not Phase.RUNNING:
                continue
            settle = self.policy.settle(track.kind)
            self.quiet_until[host] = max(self.quiet_until.get(host, 0.0), result.ended_at + settle)
            before = (list(track.tried), track.run_ended, track.verify_after, track.phase)
            try:
                steps = after_run(
                    track, result, action, settle=settle, verify_timeout=rem.verify_timeout
                )
                self.steps.run(track, steps, now)
            except BaseException:
                # The store failed midway: this result (its track as it was) and the rest
                # wait for the next tick.
                track.tried[:], track.run_ended, track.verify_after, track.phase = before
                self.dispatcher.requeue(ended[done:])
                raise

    def settling(self, host: str, since: float, now: float, rule: SignalRule) -> bool:
        """True while a high run that began before the host's last run settled may still be
        that run's own load: it counts once it has lasted a sustain window after the settle."""
        quiet = self.quiet_until.get(host)
        return quiet is not None and now < quiet + rule.sustain and since < quiet

    def _wait(self, track: Track, why: str, now: float) -> None:
        """The verdict was to run, but not now: record why, and decide again shortly."""
        track.last_verdict = None
        self.steps.run(track, [Note("waiting", why), Retry(now + BUSY_RETRY)], now)
