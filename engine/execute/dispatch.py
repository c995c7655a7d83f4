"""Run playbooks off the tick: a small worker pool, a queue of finished runs, cancel on stop.

The tick hands a validated, recorded request here and goes on; the run's end is
recorded by the worker, and the tick picks up the result on its next pass. A host of a
batch that Ansible cannot reach is reported as soon as its event arrives, not when the
batch's slowest host finishes.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

from engine.execute.host_outcomes import HostEnd
from engine.execute.locks import HeldLocks
from engine.execute.runner import Executor
from engine.record.recorder import Recorder
from engine.types import HostRunStats, RunRequest, RunResult

log = logging.getLogger("autosre.engine")


def run_ident(action: str, now: float) -> str:
    """A new run's ident: its start time, its action and a random suffix."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime(now))
    return f"{stamp}-{action}-{uuid.uuid4().hex[:8]}"


def wait_until_idle(busy: Callable[[], bool], timeout: float) -> bool:
    """Wait (bounded) until ``busy()`` is false; True if it became so in time."""
    deadline = time.monotonic() + timeout
    while busy():
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.05)
    return True


class RunDispatcher:
    """Starts runs on worker threads and reports (host, result, action) when they end."""

    def __init__(
        self,
        *,
        executor: Executor,
        recorder: Recorder,
        workers: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.executor = executor
        self.recorder = recorder
        self.clock = clock
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="autosre-run")
        self._futures: set[Future[None]] = set()
        self._finished: queue.SimpleQueue[tuple[str, RunResult, str]] = queue.SimpleQueue()
        self._cancel = threading.Event()
        self._reported: dict[str, set[str]] = {}  # run ident -> hosts whose end is reported
        self._mutex = threading.Lock()

    def start(
        self, request: RunRequest, *, ident: str, run_id: int, locks: Sequence[HeldLocks]
    ) -> None:
        """Run the (already recorded) request on a worker; the locks are released after."""
        future = self._pool.submit(self._run, request, ident, run_id, list(locks))
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)

    def _run(self, request: RunRequest, ident: str, run_id: int, locks: list[HeldLocks]) -> None:
        started = self.clock()
        with self._mutex:
            self._reported[ident] = set()

        def unreachable(end: HostEnd) -> None:
            self._host_ended(request, ident, started, end)

        try:
            result = self.executor.run(
                request, ident=ident, cancel=self._cancel, on_unreachable=unreachable
            )
        except Exception as exc:  # an executor bug must still end the run record
            result = RunResult(ident, "error", None, "", started, self.clock(), {}, str(exc))
        finally:
            for lock in locks:
                lock.release()
        self.finish(request, run_id, result)

    def finish(self, request: RunRequest, run_id: int, result: RunResult) -> None:
        """Record how a run ended and report it to the tick (its locks are already free)."""
        self.recorder.runs.end(run_id, result)
        log.info(
            "run %s %s (rc %s) in %.1fs",
            result.ident,
            result.status,
            result.rc,
            result.ended_at - result.started_at,
        )
        with self._mutex:
            reported = self._reported.pop(result.ident, set())
        for host in request.hosts:
            if host not in reported:
                self._finished.put((host, result, request.action))

    def _host_ended(self, request: RunRequest, ident: str, started: float, end: HostEnd) -> None:
        """One host of a run in flight is done (unreachable): report it now, once."""
        with self._mutex:
            reported = self._reported.get(ident)
            if reported is None or end.host in reported or end.host not in request.hosts:
                return
            reported.add(end.host)
        log.warning("run %s: %s %s", ident, end.host, end.describe())
        result = RunResult(
            ident,
            "failed",
            None,
            "",
            started,
            end.at,
            {end.host: HostRunStats(unreachable=1)},
            host_errors={end.host: end.describe()},
        )
        self._finished.put((end.host, result, request.action))

    @property
    def cancel(self) -> threading.Event:
        """Set when the engine stops: every run it started should stop too."""
        return self._cancel

    def finished(self) -> list[tuple[str, RunResult, str]]:
        """Every (host, result, action) that ended since the last call."""
        done = []
        while True:
            try:
                done.append(self._finished.get_nowait())
            except queue.Empty:
                return done

    def busy(self) -> bool:
        """True while a run is in flight."""
        return any(not f.done() for f in self._futures)

    def wait_idle(self, timeout: float) -> bool:
        """Wait (bounded) until no run is in flight; True if idle."""
        return wait_until_idle(self.busy, timeout)

    def shutdown(self, *, cancel_runs: bool, timeout: float) -> None:
        """Stop taking runs; cancel the ones in flight (recorded as canceled) if asked."""
        if cancel_runs:
            self._cancel.set()
        self.wait_idle(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
