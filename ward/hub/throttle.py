"""Log-in throttling decisions: how long an account or an address must wait after failures.

Pure: states in, states out, `now` passed in; no database, no clock (`ward.hub.logins` stores
the states in PostgreSQL so that every hub process agrees). After `lock_after` failures the
key is locked for `first_lock`, doubling with each further failure up to `max_lock`; an
attempt while locked is refused without checking the password and does not count, so the
lock ends when it says. Failures are forgotten after `forget_after` without one, and an
account's are cleared by a successful log-in.
"""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, replace


@dataclass(frozen=True, slots=True)
class Policy:
    lock_after: int
    first_lock: dt.timedelta
    max_lock: dt.timedelta
    forget_after: dt.timedelta

    def __post_init__(self) -> None:
        if self.lock_after < 1:
            raise ValueError(f"lock_after must be ≥ 1, got {self.lock_after}")
        if not dt.timedelta(0) < self.first_lock <= self.max_lock:
            raise ValueError(f"first_lock must be > 0 and ≤ max_lock, got {self.first_lock}, "
                             f"{self.max_lock}")
        if self.forget_after < self.max_lock:
            raise ValueError("forget_after must outlast the longest lock, or waiting out a "
                             "lock would also wipe the count")

    def lock_for(self, failures: int) -> dt.timedelta | None:
        """The lock earned by `failures` consecutive failures (None: not locked yet)."""
        over = failures - self.lock_after
        if over < 0:
            return None
        # 2**20 × 30 s is far past any cap; bounding the exponent keeps the arithmetic small.
        return min(self.first_lock * (1 << min(over, 20)), self.max_lock)


# Per account: five failures allow for typos and a forgotten caps lock; then 30 s, doubling to
# an hour, which holds a guesser to about 24 tries a day (NIST SP 800-63B §5.2.2 asks for no
# more than 100 consecutive failures per account). Forgotten after a quiet day.
ACCOUNT = Policy(lock_after=5, first_lock=dt.timedelta(seconds=30),
                 max_lock=dt.timedelta(hours=1), forget_after=dt.timedelta(hours=24))
# Per address: a hub office behind one NAT address has many nurses, so 30 failures before a
# lock and at most 15 minutes; this stops one machine spraying guesses over many accounts.
ADDRESS = Policy(lock_after=30, first_lock=dt.timedelta(seconds=30),
                 max_lock=dt.timedelta(minutes=15), forget_after=dt.timedelta(hours=1))


@dataclass(frozen=True, slots=True)
class State:
    failures: int = 0
    last_failure_at: dt.datetime | None = None
    locked_until: dt.datetime | None = None


def retry_after(state: State, now: dt.datetime) -> dt.timedelta | None:
    """How long the key is still locked at `now`; None when it is not."""
    if state.locked_until is None or state.locked_until <= now:
        return None
    return state.locked_until - now


def _current(state: State, now: dt.datetime, policy: Policy) -> State:
    last = state.last_failure_at
    if last is None or now - last >= policy.forget_after:
        return State()
    return state


def after_failure(state: State, now: dt.datetime, policy: Policy) -> State:
    """The state once one more failure is counted at `now`."""
    failures = _current(state, now, policy).failures + 1
    lock = policy.lock_for(failures)
    return State(failures, now, None if lock is None else now + lock)


def forgive_one(state: State, policy: Policy) -> State:
    """Take back one failure counted in advance (the attempt turned out to be right)."""
    if state.failures == 0 or state.last_failure_at is None:
        return state
    failures = state.failures - 1
    lock = policy.lock_for(failures)
    return replace(state, failures=failures,
                   locked_until=None if lock is None else state.last_failure_at + lock)


def seconds(wait: dt.timedelta) -> int:
    """A wait as whole seconds for `Retry-After` (rounded up: never invite an early retry)."""
    return max(1, math.ceil(wait.total_seconds()))
