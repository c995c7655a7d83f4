"""Failed sign-ins counted in the store on both real backends: three limits, one window.

Store fixtures (``store_url``, ``sessions``, ``opened``) are in tests/engine/conftest.py.
"""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from engine.accounts.login_limits import LoginLimiter, LoginLimits, Refusal
from engine.store import open_store
from engine.store.accounts import LoginFailure

T0 = 1_700_000_000.0
LIMITS = LoginLimits(per_address_and_name=3, per_address=5, per_name=4, window=100.0)


def limiter_at(
    sessions: sessionmaker[Session], now: list[float], limits: LoginLimits = LIMITS
) -> LoginLimiter:
    return LoginLimiter(sessions, limits, clock=lambda: now[0])


def rows(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count(LoginFailure.id))) or 0


def fail(limiter: LoginLimiter, now: list[float], address: str, name: str, times: int) -> None:
    for _ in range(times):
        limiter.failed(address, name)
        now[0] += 1


def test_per_address_and_name(sessions: sessionmaker[Session]) -> None:
    now = [T0]
    limiter = limiter_at(sessions, now)
    fail(limiter, now, "192.0.2.1", "alice", 2)
    assert limiter.check("192.0.2.1", "alice") is None
    fail(limiter, now, "192.0.2.1", "alice", 1)
    # The first failure was at T0; it ages out at T0 + 100. Now is T0 + 3.
    assert limiter.check("192.0.2.1", "alice") == Refusal(
        97, "Too many failed sign-ins for this name from your address."
    )
    assert limiter.check("192.0.2.1", "bob") is None
    assert limiter.check("192.0.2.2", "alice") is None
    now[0] = T0 + 100
    assert limiter.check("192.0.2.1", "alice") is None


def test_per_address_across_names(sessions: sessionmaker[Session]) -> None:
    now = [T0]
    limiter = limiter_at(sessions, now)
    for name in ("a", "b", "c", "d", "e"):
        fail(limiter, now, "192.0.2.1", name, 1)
    refusal = limiter.check("192.0.2.1", "never-tried")
    assert refusal == Refusal(95, "Too many failed sign-ins from your address.")


def test_per_name_across_addresses(sessions: sessionmaker[Session]) -> None:
    now = [T0]
    limiter = limiter_at(sessions, now)
    for n in range(4):
        fail(limiter, now, f"198.51.100.{n}", "alice", 1)
    refusal = limiter.check("203.0.113.9", "alice")
    assert refusal == Refusal(96, "Too many failed sign-ins for this name.")
    assert limiter.check("203.0.113.9", "bob") is None


def test_retry_after_counts_the_excess(sessions: sessionmaker[Session]) -> None:
    # Concurrent attempts can overshoot a limit: the wait is until enough have aged out.
    now = [T0]
    limiter = limiter_at(sessions, now)
    fail(limiter, now, "192.0.2.1", "alice", 5)  # 5 > 3, at T0 .. T0 + 4
    refusal = limiter.check("192.0.2.1", "alice")
    assert refusal is not None
    # Three must age out: the third oldest, at T0 + 2, leaves at T0 + 102; now is T0 + 5.
    assert refusal.retry_after == 97


def test_the_longest_wait_wins_and_is_at_least_a_second(sessions: sessionmaker[Session]) -> None:
    now = [T0]
    limiter = limiter_at(sessions, now, LoginLimits(1, 1, 1, 0.5))
    limiter.failed("192.0.2.1", "alice")
    now[0] += 0.4
    refusal = limiter.check("192.0.2.1", "alice")
    assert refusal is not None
    assert refusal.retry_after == 1


def test_success_forgets_only_that_pair(sessions: sessionmaker[Session]) -> None:
    now = [T0]
    limiter = limiter_at(sessions, now)
    fail(limiter, now, "192.0.2.1", "alice", 2)
    fail(limiter, now, "192.0.2.2", "alice", 1)
    fail(limiter, now, "192.0.2.1", "bob", 1)
    limiter.succeeded("192.0.2.1", "alice")
    assert rows(sessions) == 2


def test_old_rows_are_pruned_on_the_next_failure(sessions: sessionmaker[Session]) -> None:
    now = [T0]
    limiter = limiter_at(sessions, now)
    fail(limiter, now, "192.0.2.1", "alice", 3)
    now[0] = T0 + 101
    limiter.failed("192.0.2.9", "zed")
    assert rows(sessions) == 2  # T0 went; T0 + 1 and T0 + 2 are still inside the window
    now[0] = T0 + 500
    limiter.failed("192.0.2.9", "zed")
    assert rows(sessions) == 1


def test_long_keys_are_cut_to_the_column(sessions: sessionmaker[Session]) -> None:
    now = [T0]
    limiter = limiter_at(sessions, now)
    fail(limiter, now, "1" * 500, "n" * 500, 3)
    assert limiter.check("1" * 500, "n" * 500) is not None
    assert limiter.check("1" * 64, "n" * 64) is not None


def test_counts_are_shared_between_store_handles(
    store_url: str, sessions: sessionmaker[Session], opened: list[sessionmaker[Session]]
) -> None:
    other = open_store(store_url)
    opened.append(other)
    now = [T0]
    here, there = limiter_at(sessions, now), limiter_at(other, now)
    fail(here, now, "192.0.2.1", "alice", 2)
    fail(there, now, "192.0.2.1", "alice", 1)
    assert there.check("192.0.2.1", "alice") is not None
    assert here.check("192.0.2.1", "alice") is not None
