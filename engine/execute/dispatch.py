"""Run playbooks off the tick: a small worker pool, a queue of finished runs, cancel on stop.

The tick hands a validated, recorded request here and goes on; the run's end is
recorded by the worker, and the tick picks up the result on its next pass. A host of a
batch that Ansible cannot reach is reported as soon as its event arrives, not when the
batch's slowest host finishes.

An end the store cannot take (it is down) is never lost: it is kept and tried again on
each of the tick's passes, and the tick hears of the run only once its end is recorded.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from engine.execute.cancel_watch import RunCancel, watch_for
from engine.execute.host_outcomes import HostEnd
from engine.execute.locks import Held
from engine.execute.runner import Executor
from engine.record.recorder import Recorder
from engine.store_outage import describe, store_error
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


@dataclass(eq=False, slots=True)
class _End:
    """A run's end to record: ``write`` records it; the tick hears of ``request``'s hosts
    once it is recorded (None: nobody waits for it, as for a discarded staged run)."""

    result: RunResult
    write: Callable[[], None]
    request: RunRequest | None
    failures: int = 0
    failed_at: float = 0.0  # monotonic time of the first failure


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
        self._pending: list[_End] = []  # ends not recorded yet, oldest first
        self._recording = threading.Lock()  # held while ends are written
        self._watch = watch_for(recorder.sessions)  # people's cancel requests, in the store
        self._cancels: dict[str, RunCancel] = {}  # run ident -> its cancel, while in flight

    def start(self, request: RunRequest, *, ident: str, run_id: int, locks: Sequence[Held]) -> None:
        """Run the (already recorded) request on a worker; the locks are released after."""
        future = self._pool.submit(self._run, request, ident, run_id, list(locks))
        self._futures.add(future)
        future.add_done_callback(self._futures.discard)

    def _run(self, request: RunRequest, ident: str, run_id: int, locks: list[Held]) -> None:
        started = self.clock()
        with self._mutex:
            self._reported[ident] = set()

        def unreachable(end: HostEnd) -> None:
            self._host_ended(request, ident, started, end)

        try:
            result = self.executor.run(
                request, ident=ident, cancel=self.cancel_for(ident), on_unreachable=unreachable
            )
        except Exception as exc:  # an executor bug must still end the run record
            result = RunResult(ident, "error", None, "", started, self.clock(), {}, str(exc))
        finally:
            for lock in locks:
                lock.release()
        self.finish(request, run_id, result)

    def cancel_for(self, ident: str) -> threading.Event:
        """Run ``ident``'s cancel: a person's request in the store, or the engine's stop."""
        cancel = self._watch.add(ident)
        with self._mutex:
            self._cancels[ident] = cancel
        if self._cancel.is_set():  # shutdown() set it before this run was known
            cancel.stop()
        return cancel.event

    def forget(self, ident: str) -> RunCancel | None:
        """Stop watching run ``ident`` (it ended, or never started); its cancel."""
        self._watch.remove(ident)
        with self._mutex:
            return self._cancels.pop(ident, None)

    def finish(self, request: RunRequest, run_id: int, result: RunResult) -> None:
        """Record how a run ended, then report it to the tick (its locks are already free);
        kept and retried when the store cannot take it now."""
        cancel = self.forget(result.ident)
        if cancel is not None:
            result = cancel.labelled(result)  # "canceled by NAME" when a person asked
        log.info(
            "run %s %s (rc %s) in %.1fs",
            result.ident,
            result.status,
            result.rc,
            result.ended_at - result.started_at,
        )
        self.settle(result, lambda: self.recorder.runs.end(run_id, result), request)

    def settle(
        self, result: RunResult, write: Callable[[], None], request: RunRequest | None = None
    ) -> None:
        """Record an end with ``write`` now, or keep it and retry on the tick's passes; the
        tick hears of ``request``'s hosts once it is recorded."""
        end = _End(result, write, request)
        self.forget(result.ident)
        with self._mutex:
            self._pending.append(end)
        with self._recording:  # one writer at a time: an end is never recorded twice
            self._record([end])

    def _retry(self, *, wait: float = 0.0) -> None:
        """Try again every end not recorded yet (a worker recording now is not waited for,
        unless ``wait`` says how long to)."""
        if not self._recording.acquire(timeout=wait):
            return
        try:
            with self._mutex:
                pending = list(self._pending)
            self._record(pending)
        finally:
            self._recording.release()

    def _record(self, ends: Sequence[_End]) -> None:
        """Write each end (the caller holds ``_recording``); stop at the first one the store
        cannot take: the others would fail the same way."""
        for end in ends:
            try:
                end.write()
            except Exception as exc:  # kept and retried: an end is never lost
                self._not_recorded(end, exc)
                if store_error(exc) is not None:
                    return
                continue
            with self._mutex:
                self._pending.remove(end)
            if end.failures:
                log.info(
                    "run %s: its end (%s) is recorded at last, %.1fs after %d failed attempt(s)",
                    end.result.ident,
                    end.result.status,
                    time.monotonic() - end.failed_at,
                    end.failures,
                )
            if end.request is not None:
                self._report(end.request, end.result)

    @staticmethod
    def _not_recorded(end: _End, exc: Exception) -> None:
        """Told once per end: the first failure, in one line unless it is a bug."""
        end.failures += 1
        if end.failures > 1:
            return
        end.failed_at = time.monotonic()
        cause = store_error(exc)
        if cause is not None:
            log.warning(
                "run %s ended %s but its end cannot be recorded (%s); kept, and retried on "
                "every tick until the store takes it",
                end.result.ident,
                end.result.status,
                describe(cause),
            )
        else:
            log.error(
                "run %s ended %s but recording its end failed; kept and retried",
                end.result.ident,
                end.result.status,
                exc_info=exc,
            )

    def _report(self, request: RunRequest, result: RunResult) -> None:
        """Hand the tick the hosts of a recorded end (those not reported early)."""
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
        """Set when the engine stops: every run it started stops too (``cancel_for``)."""
        return self._cancel

    def finished(self) -> list[tuple[str, RunResult, str]]:
        """Every (host, result, action) that ended since the last call (and whose end is
        recorded: the ends kept while the store was down are tried again first)."""
        if self._pending:
            self._retry()
        done = []
        while True:
            try:
                done.append(self._finished.get_nowait())
            except queue.Empty:
                return done

    def requeue(self, items: list[tuple[str, RunResult, str]]) -> None:
        """Put back what ``finished`` handed out but the tick could not carry through (the
        store failed midway): the next tick takes them again."""
        for item in items:
            self._finished.put(item)

    def busy(self) -> bool:
        """True while a run is in flight."""
        return any(not f.done() for f in self._futures)

    def wait_idle(self, timeout: float) -> bool:
        """Wait (bounded) until no run is in flight; True if idle."""
        return wait_until_idle(self.busy, timeout)

    def pending(self) -> int:
        """How many runs' ends are not recorded yet (the store could not take them)."""
        with self._mutex:
            return len(self._pending)

    def shutdown(self, *, cancel_runs: bool, timeout: float) -> None:
        """Stop taking runs; cancel the ones in flight (recorded as canceled) if asked; try
        once more (bounded) to record the ends the store could not take."""
        if cancel_runs:
            self._cancel.set()
            with self._mutex:
                cancels = list(self._cancels.values())
            for cancel in cancels:
                cancel.stop()
        self.wait_idle(timeout)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if self._pending:
            self._retry(wait=timeout)
        with self._mutex:
            lost = list(self._pending)
        for end in lost:
            log.error(
                "run %s ended %s; its end is not recorded (the store did not take it): the "
                "engine's next start settles it from what the run left on disk",
                end.result.ident,
                end.result.status,
            )
