"""The values that flow between pipeline stages, defined once.

Every type here is a frozen dataclass (``Sample``, made by the hundred thousand a tick, a
named tuple): stages pass facts, never mutable state.
Timestamps are UNIX seconds (float, UTC) so pure stages can be driven by a fake clock.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple


class HostStatus(enum.StrEnum):
    """What the evaluator concluded about a host at one tick."""

    NORMAL = "NORMAL"
    HIGH_CPU = "HIGH_CPU"
    MEMORY_PRESSURE = "MEMORY_PRESSURE"
    DISK_FULL = "DISK_FULL"
    SERVICE_DOWN = "SERVICE_DOWN"
    UNKNOWN = "UNKNOWN"


class VerdictKind(enum.StrEnum):
    """What the policy gate allows."""

    EXECUTE = "execute"
    AWAIT_APPROVAL = "await_approval"  # allowed, but only once a human approves
    ESCALATE = "escalate"
    WAIT = "wait"  # do nothing for now (cooldown, concurrency limit); decide again later
    DO_NOTHING = "do_nothing"  # nothing to do on this basis (no data, not whitelisted)


ESCALATE_ACTION = "escalate"
DO_NOTHING_ACTION = "do_nothing"


class Sample(NamedTuple):
    """One metric value for one host at one time (a named tuple: a third of a frozen
    dataclass's cost to make, and a fleet's windows hold hundreds of thousands)."""

    host: str
    ts: float
    value: float


@dataclass(frozen=True, slots=True)
class MetricsBatch:
    """What one query per tick returned: a window of samples per inventory host.

    ``error`` is set when the source could not answer at all (every host is then
    unknown); ``unmatched`` lists series labels that matched no inventory host.
    """

    fetched_at: float
    windows: Mapping[str, Sequence[Sample]]  # oldest first
    error: str | None = None
    unmatched: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class HostState:
    """The evaluator's verdict on one host at one tick, and why."""

    host: str
    status: HostStatus
    value: float | None  # the latest sample, percent; None when there is no data
    since: float  # when the current status began (first high sample for HIGH_CPU)
    reason: str
    sample_ts: float | None = None  # timestamp of the latest sample
    # While NORMAL: when the high run still filling the sustain window began (None if none).
    rising_since: float | None = None


@dataclass(frozen=True, slots=True)
class PlannerCall:
    """What one model call cost and said, as stored with the decision (already redacted)."""

    provider: str  # gemini | openai
    model: str
    latency: float  # seconds, all attempts included
    attempts: int
    prompt: str
    reply: str | None
    input_tokens: int | None = None
    output_tokens: int | None = None
    error: str | None = None  # why the reply was not used, when it was not
    cached: bool = False


@dataclass(frozen=True, slots=True)
class Proposal:
    """A planner's advice: one action, a confidence in [0, 1], and why.

    ``planner`` names who decided in the end ("rules" when a model call fell back);
    ``call`` carries the model call behind it, if any; ``fallback`` says why the rules
    planner stood in for the model.
    """

    action: str
    confidence: float
    rationale: str
    planner: str = "rules"
    call: PlannerCall | None = None
    fallback: str | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    """The policy gate's decision over a proposal, with the rule that decided it."""

    kind: VerdictKind
    action: str | None
    reason: str
    rule: str  # machine-readable name of the deciding rule, e.g. "cooldown"
    overridden: bool = False  # True when a deterministic rule changed the proposal
    retry_at: float | None = None  # for WAIT: when deciding again makes sense


@dataclass(frozen=True, slots=True)
class Attempt:
    """One past remediation on a host, as the policy sees it."""

    incident_id: int
    action: str
    started_at: float
    ended_at: float | None
    succeeded: bool | None  # verified recovery; None while unknown or running


@dataclass(frozen=True, slots=True)
class HostHistory:
    """What the policy needs to know about a host's past."""

    host: str
    attempts: tuple[Attempt, ...] = ()
    remediating_hosts: int = 0  # hosts with a run in flight, fleet-wide


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Which playbook to run, where, and with what (already validated by policy)."""

    action: str
    playbook: str  # absolute path
    hosts: tuple[str, ...]
    extra_vars: Mapping[str, str] = field(default_factory=dict)
    secret_vars: frozenset[str] = frozenset()
    check: bool = False
    timeout: int = 300
    env: tuple[str, ...] = ()  # variables passed through from the engine's environment


@dataclass(frozen=True, slots=True)
class HostRunStats:
    """Ansible's recap for one host."""

    ok: int = 0
    changed: int = 0
    failures: int = 0
    unreachable: int = 0
    skipped: int = 0
    rescued: int = 0
    ignored: int = 0

    @property
    def succeeded(self) -> bool:
        """True when the host had no failed or unreachable task."""
        return self.failures == 0 and self.unreachable == 0


@dataclass(frozen=True, slots=True)
class RunResult:
    """What ansible-runner reported for one run."""

    ident: str
    status: str  # successful | failed | timeout | canceled | error
    rc: int | None
    artifact_dir: str
    started_at: float
    ended_at: float
    stats: Mapping[str, HostRunStats] = field(default_factory=dict)
    error: str | None = None
    # Per host, Ansible's own account of its first unreachable or failed task (redacted).
    host_errors: Mapping[str, str] = field(default_factory=dict)

    def unreachable(self, host: str) -> bool:
        """True when Ansible could not reach this host (it did nothing there)."""
        stats = self.stats.get(host)
        return stats is not None and stats.unreachable > 0

    def host_succeeded(self, host: str) -> bool:
        """True when the run finished and this host's recap shows no failure."""
        stats = self.stats.get(host)
        # In a batched run, ansible-playbook exits 2 (a host failed) or 4 (a host was
        # unreachable) for the whole run; the other hosts' recaps still tell the truth.
        finished = self.status == "successful" or (self.status == "failed" and self.rc in (2, 4))
        return finished and stats is not None and stats.succeeded


@dataclass(frozen=True, slots=True)
class Verification:
    """Whether a host recovered after a run: True, False, or None (no data)."""

    host: str
    recovered: bool | None
    value: float | None
    checked_at: float
    reason: str


class ApprovalStatus(enum.StrEnum):
    """A pending action's fate."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class Approval:
    """A proposed action waiting for (or decided by) a human."""

    id: int
    incident_id: int
    decision_id: int
    host: str
    action: str
    status: ApprovalStatus
    requested_at: float
    expires_at: float
    rationale: str = ""
    decided_at: float | None = None
    decided_by: str | None = None
    note: str | None = None


@dataclass(frozen=True, slots=True)
class MaintenanceWindow:
    """A time during which the engine keeps its hands off a host, or every host of a group."""

    id: int
    host: str | None  # exactly one of host and group is set
    group: str | None
    reason: str
    set_by: str
    starts_at: float
    ends_at: float
    ended_at: float | None = None  # ended early, by hand
    ended_by: str | None = None

    @property
    def scope(self) -> str:
        """What it covers, as people say it: "host web2" or "group web"."""
        return f"host {self.host}" if self.host is not None else f"group {self.group}"

    def active(self, now: float) -> bool:
        """True while it holds: started, not expired, not ended early."""
        return self.ended_at is None and self.starts_at <= now < self.ends_at


@dataclass(frozen=True, slots=True)
class HostHolds:
    """What keeps automatic remediation off one host: its windows, and a flapping take-out."""

    windows: tuple[MaintenanceWindow, ...] = ()
    disabled_at: float | None = None  # taken out of automatic remediation (flapping)
    disabled_reason: str = ""
    enabled_at: float | None = None  # the last time a human re-enabled it
