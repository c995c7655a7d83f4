"""Property (issue 14): replaying random run histories through the rate-limit check never lets
any sliding window of any limit hold more than its max, and it refuses only runs that
would truly break a limit.

A history is ticks in time order. At each tick the engine judges some single-host runs
(counted at once by ``Accepted``, reaching the store only at the tick's launch, which may
find the host busy and not run), then people start runs by hand on one or more hosts,
each checked against the store and recorded at once, as under the hosts' locks.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from engine.policy.rate_limit_schema import RateLimit
from engine.policy.rate_limits import Accepted, RunMark, first_hit, longest

ACTIONS = ("restart", "rollback", "clean")
HOSTS = ("web1", "web2", "web3", "db1")


@dataclass(frozen=True)
class Tick:
    at: float
    engine: list[tuple[str, str, bool]]  # (action, host, launched)
    by_hand: list[tuple[str, list[str]]]  # (action, hosts), approved or manual alike


limits_strategy = st.lists(
    st.one_of(
        st.builds(
            RateLimit,
            scope=st.just("host"),
            action=st.one_of(st.none(), st.sampled_from(ACTIONS)),
            max=st.integers(1, 4),
            per=st.sampled_from([5.0, 30.0, 60.0, 300.0]),
        ),
        st.builds(
            RateLimit,
            scope=st.just("action"),
            action=st.sampled_from(ACTIONS),
            max=st.integers(1, 6),
            per=st.sampled_from([10.0, 60.0, 300.0]),
        ),
        st.builds(
            RateLimit,
            scope=st.just("fleet"),
            max=st.integers(1, 8),
            per=st.sampled_from([10.0, 60.0, 600.0]),
        ),
    ),
    min_size=1,
    max_size=4,
)
tick_strategy = st.tuples(
    st.floats(0.1, 40.0),  # time since the last tick: ticks are serial, MIN_POLL apart
    st.lists(
        st.tuples(st.sampled_from(ACTIONS), st.sampled_from(HOSTS), st.booleans()), max_size=4
    ),
    st.lists(
        st.tuples(
            st.sampled_from(ACTIONS), st.lists(st.sampled_from(HOSTS), min_size=1, max_size=3)
        ),
        max_size=2,
    ),
)


def counted(limit: RateLimit, marks: list[RunMark], end: float) -> dict[str | None, int]:
    """Host-runs of the limit in the window (end - per, end], per host for a host limit."""
    counts: dict[str | None, int] = {}
    for mark in marks:
        if end - limit.per < mark.at <= end and limit.applies_to(mark.action):
            key = mark.host if limit.scope == "host" else None
            counts[key] = counts.get(key, 0) + 1
    return counts


def truly_over(
    limits: list[RateLimit], runs: list[RunMark], action: str, hosts: list[str], at: float
) -> bool:
    """The oracle: would these host-runs at ``at`` break some limit (counted naively)?"""
    new = [RunMark(at, action, host) for host in sorted(set(hosts))]
    for limit in limits:
        if limit.applies_to(action):
            counts = counted(limit, runs + new, at)
            if any(n > limit.max for n in counts.values()):
                return True
    return False


@settings(max_examples=200, deadline=None)
@given(limits=limits_strategy, raw=st.lists(tick_strategy, max_size=25), reread=st.booleans())
def test_no_window_of_any_limit_ever_exceeds_its_max(
    limits: list[RateLimit],
    raw: list[tuple[float, list[tuple[str, str, bool]], list[tuple[str, list[str]]]]],
    reread: bool,
) -> None:
    ticks, at = [], 1_000_000.0
    for gap, engine, by_hand in raw:
        at += gap
        ticks.append(Tick(at, engine, by_hand))
    stored: list[RunMark] = []  # what the store holds: every run that started
    accepted = Accepted()
    for tick in ticks:
        judged: set[str] = set()
        window: list[RunMark] | None = None
        allowed = 0  # engine runs allowed this tick, launched or not
        # Two rounds, as in the engine: what is decided at once launches before the
        # proposals that came after a short wait are judged.
        half = len(tick.engine) // 2
        for part in (tick.engine[:half], tick.engine[half:]):
            launching: list[RunMark] = []
            for action, host, launched in part:
                if host in judged:  # one incident per host: one verdict per tick at most
                    continue
                judged.add(host)
                # The engine reads the store before every verdict (it sees the first
                # round's launches); a read once a tick must come out as safe.
                if reread or window is None:
                    window = [m for m in stored if m.at > tick.at - longest(limits)]
                marks = accepted.merged(window, tick.at)
                # Each run allowed this tick counts exactly once, recorded or not yet.
                assert sum(m.engine and m.at == tick.at for m in marks) == allowed
                hit = first_hit(limits, marks, action=action, hosts=[host], now=tick.at)
                assert (hit is not None) == truly_over(limits, marks, action, [host], tick.at)
                if hit is None:
                    accepted.add(action, [host], window, tick.at)
                    allowed += 1
                    if launched:  # else the host was busy: nothing ran
                        launching.append(RunMark(tick.at, action, host, engine=True))
            stored += launching  # the round's batch starts and is recorded
        for action, hosts in tick.by_hand:
            hit = first_hit(limits, stored, action=action, hosts=hosts, now=tick.at)
            assert (hit is not None) == truly_over(limits, stored, action, hosts, tick.at)
            if hit is None:
                stored += [RunMark(tick.at, action, host) for host in sorted(set(hosts))]
    assert_every_window_within(limits, stored)


def assert_every_window_within(limits: list[RateLimit], stored: list[RunMark]) -> None:
    """Every sliding window of every limit holds at most its max: the fullest window of a
    limit ends at one of its runs, so the windows ending at each run's time cover them all."""
    for limit in limits:
        for end in {mark.at for mark in stored}:
            for key, n in counted(limit, stored, end).items():
                assert n <= limit.max, (limit.describe(), key, end)
