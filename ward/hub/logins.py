"""One log-in attempt, throttled per account and per address, and audited when it fails.

The thin I/O side of `ward.hub.throttle`: the states live in `hub_login_throttle` so every
hub process sees the same counts. An attempt

1. locks the account's and the address's rows (milliseconds: no password is checked while
   they are held), refuses at once (429) if either is locked, else counts itself as a failure
   in advance and commits — so a thousand parallel guesses cannot all pass the check before
   the first failure is written;
2. checks the password (argon2, ~50 ms, no lock held);
3. on success clears the account's failures and takes back the address's advance count; on
   failure leaves the count standing.

Every refusal and every failure is written to the audit log and committed even though the
request then fails: user name tried, address, reason, whether a form or the token API; never
the password.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from ward.hub import audit, auth, throttle
from ward.hub.auth import User

Conn = psycopg.Connection[Any]
POLICIES = {"account": throttle.ACCOUNT, "address": throttle.ADDRESS}
# The audit's `actor` column holds the name tried; usernames are at most 64 characters.
_NAME_MAX = 64


@dataclass(frozen=True, slots=True)
class Refused:
    """A failed attempt: 401 (wrong credentials) or 429 (locked, retry after this many s)."""

    status: int
    retry_after_s: int | None = None


Key = tuple[str, str]


def _locked_states(conn: Conn, keys: list[Key]) -> dict[Key, throttle.State]:
    conn.execute(
        "INSERT INTO hub_login_throttle (scope, key) SELECT * FROM unnest(%s::text[], "
        "%s::text[]) ON CONFLICT DO NOTHING", ([s for s, _ in keys], [k for _, k in keys]))
    rows = conn.execute(
        "SELECT scope, key, failures, last_failure_at, locked_until FROM hub_login_throttle "
        "WHERE (scope, key) IN (SELECT * FROM unnest(%s::text[], %s::text[])) "
        "ORDER BY scope, key FOR UPDATE", ([s for s, _ in keys], [k for _, k in keys]))
    return {(str(r[0]), str(r[1])): throttle.State(int(r[2]), r[3], r[4]) for r in rows}


def _store(conn: Conn, key: Key, state: throttle.State) -> None:
    if state.failures == 0 and state.locked_until is None:  # nothing to remember
        conn.execute("DELETE FROM hub_login_throttle WHERE scope = %s AND key = %s", key)
        return
    conn.execute(
        "UPDATE hub_login_throttle SET failures = %s, last_failure_at = %s, locked_until = %s "
        "WHERE scope = %s AND key = %s",
        (state.failures, state.last_failure_at, state.locked_until, *key))


def _forget_old(conn: Conn, now: dt.datetime) -> None:
    """Delete rows that can never lock anything again, in a transaction of its own.

    SKIP LOCKED: rows another attempt holds are left for later, so this never waits and can
    never be half of a deadlock."""
    horizon = now - max(p.forget_after for p in POLICIES.values())
    conn.execute(
        "DELETE FROM hub_login_throttle t USING (SELECT scope, key FROM hub_login_throttle "
        "WHERE (last_failure_at < %s OR (last_failure_at IS NULL AND failures = 0)) "
        "AND (locked_until IS NULL OR locked_until < %s) FOR UPDATE SKIP LOCKED) AS old "
        "WHERE t.scope = old.scope AND t.key = old.key", (horizon, now))
    conn.commit()


def attempt(conn: Conn, username: str, password: str, *, address: str, kind: str,
            now: dt.datetime) -> User | Refused:
    """Check one log-in; a `User` on success (the caller issues the token and commits)."""
    name = auth.normalise_username(username)[:_NAME_MAX]
    keys: list[Key] = [("account", name), ("address", address)]
    actor = name or "anonymous"
    _forget_old(conn, now)
    states = _locked_states(conn, keys)
    waits = {scope: wait for (scope, _), state in states.items()
             if (wait := throttle.retry_after(state, now)) is not None}
    if waits:
        retry = throttle.seconds(max(waits.values()))
        audit.record(conn, None, "login_refused", "session", now=now, actor=actor, detail={
            "kind": kind, "address": address, "retry_after_s": retry,
            "reason": "locked: " + " and ".join(sorted(waits))})
        conn.commit()
        return Refused(429, retry)
    for key, state in states.items():
        _store(conn, key, throttle.after_failure(state, now, POLICIES[key[0]]))
    conn.commit()
    result = auth.check_password(conn, username, password)
    if isinstance(result, User):
        account, address_key = keys
        states = _locked_states(conn, keys)
        _store(conn, account, throttle.State())
        _store(conn, address_key, throttle.forgive_one(states[address_key],
                                                       POLICIES["address"]))
        return result
    audit.record(conn, None, "login_failed", "session", now=now, actor=actor,
                 detail={"kind": kind, "address": address, "reason": result})
    conn.commit()
    return Refused(401)
