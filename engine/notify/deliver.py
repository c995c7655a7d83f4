"""The delivery worker: a thread that sends due outbox rows, with retries and backoff.

It starts and stops with the engine (autosre/wiring.py, Engine.shutdown) and never runs
on the tick: a slow or hostile receiver costs this thread at most one request deadline
per attempt. A failed attempt is retried after ``backoff * 2**attempts`` seconds (capped
at ``max_backoff``) for as long as it takes; a receiver that refuses a notice for good
(a 4xx, a redirect) marks the row failed. Rows left pending when the process stops are
delivered by the next one: the queue is the store.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from engine.notify.channels import deliver
from engine.notify.transport import DeliveryError
from engine.policy.notify_schema import Channel, Notifications
from engine.record.notifications import Claimed, NotificationRecords
from engine.redact import Redactor
from engine.store_outage import StoreOutage, store_error

log = logging.getLogger("autosre.notify")
LEASE_MARGIN = 5.0  # seconds a claim outlives one attempt's deadline

Deliver = Callable[..., None]


def backoff_delay(attempts: int, *, base: float, cap: float) -> float:
    """Seconds before the next attempt after ``attempts`` failed ones (1, 2, ...)."""
    return min(cap, base * 2.0 ** min(max(attempts - 1, 0), 40))


class DeliveryWorker:
    """Sends the outbox's due rows on a thread of its own until stopped."""

    def __init__(
        self,
        *,
        records: NotificationRecords,
        notifications: Notifications,
        secrets: Mapping[str, str],
        redactor: Redactor,
        clock: Callable[[], float] = time.time,
        send: Deliver = deliver,
    ) -> None:
        self.records = records
        self.channels: Mapping[str, Channel] = notifications.channels
        self.delivery = notifications.delivery
        self.secrets = secrets
        self.redactor = redactor.with_secrets(secrets.values())
        self.clock = clock
        self.send = send
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="autosre-notify", daemon=True)
            self._thread.start()

    def wake(self) -> None:
        """Look for due rows now (a notice was just queued)."""
        self._wake.set()

    def stop(self) -> None:
        """Stop after the attempt in flight (bounded by the request deadline)."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(self.delivery.timeout + LEASE_MARGIN)
            self._thread = None

    def _loop(self) -> None:
        outage = StoreOutage()
        while not self._stop.is_set():
            try:
                self.run_once()
            except Exception as exc:  # the store down, say: the next pass tries again
                if store_error(exc) is None:
                    log.warning("notification delivery pass failed: %s", self._safe(exc))
                elif outage.failed():  # told once per outage, not every poll
                    log.warning("notification delivery paused: %s", self._safe(exc))
            else:
                ended = outage.answered()
                if ended is not None:
                    log.info("notification delivery resumed after %.1fs", ended[0])
            self._wake.wait(self.delivery.poll)
            self._wake.clear()

    def run_once(self) -> int:
        """Attempt up to ``batch`` due rows, one claim at a time; how many were attempted."""
        done = 0
        lease = self.delivery.timeout + LEASE_MARGIN
        while done < self.delivery.batch and not self._stop.is_set():
            claims = self.records.claim_due(self.clock(), limit=1, lease=lease)
            if not claims:
                break
            self._attempt(claims[0])
            done += 1
        return done

    def _attempt(self, claim: Claimed) -> None:
        channel = self.channels.get(claim.channel)
        if channel is None:
            self.records.failed(claim, self.clock(), "the channel is no longer in the policy")
            return
        try:
            self.send(channel, claim.payload, self.secrets, timeout=self.delivery.timeout)
        except DeliveryError as exc:
            self._failed(claim, self._safe(exc), permanent=exc.permanent)
        except Exception as exc:  # a bug or a broken payload: retrying cannot help
            self._failed(claim, f"cannot be sent: {type(exc).__name__}", permanent=True)
        else:
            self.records.sent(claim, self.clock())
            log.info("notification %d: %s delivered to %s", claim.id, claim.event, claim.channel)

    def _failed(self, claim: Claimed, error: str, *, permanent: bool) -> None:
        now = self.clock()
        if permanent:
            self.records.failed(claim, now, error)
            log.warning("notification %d to %s failed for good: %s", claim.id, claim.channel, error)
            return
        delay = backoff_delay(
            claim.attempts + 1, base=self.delivery.backoff, cap=self.delivery.max_backoff
        )
        self.records.retry(claim, now, error, next_at=now + delay)
        log.warning(
            "notification %d to %s failed (attempt %d), retrying in %gs: %s",
            claim.id,
            claim.channel,
            claim.attempts + 1,
            delay,
            error,
        )

    def _safe(self, exc: BaseException | Any) -> str:
        """An error's text with every channel secret hidden (a body may echo the URL)."""
        return self.redactor.text(str(exc))
