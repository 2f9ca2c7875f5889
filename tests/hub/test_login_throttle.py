"""Log-in throttling: the pure back-off policy, and the hub refusing a guesser (429).

The policy is a table of instants (time is a parameter); the hub tests move a settable clock
instead of waiting, and run two hub applications on one database to show they share the count.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from ward.hub import throttle
from ward.hub.app import create_app
from ward.hub.auth import Role, create_user

T0 = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)
S = dt.timedelta(seconds=1)
POLICY = throttle.Policy(lock_after=3, first_lock=10 * S, max_lock=60 * S,
                         forget_after=600 * S)


def _fail(times: int, start: dt.datetime = T0, step: dt.timedelta = S) -> throttle.State:
    state = throttle.State()
    for i in range(times):
        state = throttle.after_failure(state, start + i * step, POLICY)
    return state


@pytest.mark.parametrize(("failures", "lock"), [
    (1, None), (2, None), (3, 10 * S), (4, 20 * S), (5, 40 * S), (6, 60 * S), (50, 60 * S),
    (10_000, 60 * S),
])
def test_lock_doubles_from_the_threshold_up_to_the_cap(failures, lock):
    assert POLICY.lock_for(failures) == lock
    state = _fail(failures)
    last = T0 + (failures - 1) * S
    assert state.failures == failures
    assert throttle.retry_after(state, last) == lock
    if lock is not None:
        assert throttle.retry_after(state, last + lock) is None  # over when it says


def test_failures_are_forgotten_after_a_quiet_period_but_not_by_waiting_out_a_lock():
    locked = _fail(6)
    after_lock = T0 + 5 * S + POLICY.max_lock
    assert throttle.after_failure(locked, after_lock, POLICY).failures == 7
    quiet = T0 + 5 * S + POLICY.forget_after
    assert throttle.after_failure(locked, quiet, POLICY) == throttle.State(1, quiet, None)


def test_forgiving_the_advance_count_restores_the_earlier_lock():
    state = _fail(3)  # the third (in advance) locks
    forgiven = throttle.forgive_one(state, POLICY)
    assert forgiven.failures == 2
    assert forgiven.locked_until is None
    assert throttle.forgive_one(throttle.State(), POLICY) == throttle.State()
    five = throttle.forgive_one(_fail(5), POLICY)
    assert five.locked_until == T0 + 4 * S + 20 * S


@pytest.mark.parametrize("bad", [
    {"lock_after": 0}, {"first_lock": dt.timedelta(0)}, {"first_lock": 120 * S},
    {"forget_after": 30 * S},
])
def test_policy_rejects_nonsense(bad):
    fields = {"lock_after": 3, "first_lock": 10 * S, "max_lock": 60 * S,
              "forget_after": 600 * S, **bad}
    with pytest.raises(ValueError, match="must"):
        throttle.Policy(**fields)


def test_retry_after_rounds_up():
    assert throttle.seconds(dt.timedelta(seconds=29.01)) == 30
    assert throttle.seconds(dt.timedelta(milliseconds=1)) == 1


def test_300_wrong_passwords_then_the_right_one_is_refused_while_locked(
        hub_settings, db: psycopg.Connection[Any], clock, app_client):
    create_user(db, "sister", "the right password", role=Role.HUB_NURSE)
    db.commit()
    statuses = []
    for i in range(300):
        r = app_client.post("/api/auth/token", json={"username": "Sister",
                                                     "password": f"guess {i}"})
        statuses.append(r.status_code)
    lock_after = throttle.ACCOUNT.lock_after
    assert statuses[:lock_after] == [401] * lock_after
    assert set(statuses[lock_after:]) == {429}
    right = {"username": "sister", "password": "the right password"}
    refused = app_client.post("/api/auth/token", json=right)
    assert refused.status_code == 429
    assert refused.headers["content-type"] == "application/problem+json"
    assert refused.json()["type"] == "/api/problems/too-many-requests"
    retry = int(refused.headers["retry-after"])
    assert retry == throttle.seconds(throttle.ACCOUNT.first_lock)
    # A second hub process on the same database sees the same lock; so does the form.
    with TestClient(create_app(hub_settings, clock=clock, listen=False)) as other:
        assert other.post("/api/auth/token", json=right).status_code == 429
        form = other.post("/login", data=right, headers={"Origin": "http://testserver"},
                          follow_redirects=False)
        assert form.status_code == 429
        assert form.headers["retry-after"] == str(retry)
        assert "Too many failed log-ins" in form.text
    clock.advance(seconds=retry)
    assert app_client.post("/api/auth/token", json=right).status_code == 200
    # Success cleared the account: the next mistake is an ordinary 401 again.
    wrong = app_client.post("/api/auth/token", json={"username": "sister", "password": "x"})
    assert wrong.status_code == 401
    # Every failure and refusal audited: the name tried, the address, why; no password.
    rows = db.execute("SELECT action, actor, detail FROM audit_log "
                      "WHERE action IN ('login_failed', 'login_refused') ORDER BY id").fetchall()
    assert len(rows) == 300 + 2 + 1 + 1  # guesses, two refusals by the other hub, one wrong
    assert {r[1] for r in rows} == {"sister"}
    assert {r[2]["address"] for r in rows} == {"testclient"}
    assert {r[2]["reason"] for r in rows} == {"wrong_password", "locked: account"}
    assert {r[2]["kind"] for r in rows} == {"token", "form"}
    assert not any("guess" in str(r[2]) or "right password" in str(r[2]) for r in rows)


def test_lock_grows_with_each_failure_after_it_ends(app_client, db, clock):
    create_user(db, "matron", "the right password", role=Role.HUB_NURSE)
    db.commit()
    bad = {"username": "matron", "password": "nope"}
    for _ in range(throttle.ACCOUNT.lock_after):
        assert app_client.post("/api/auth/token", json=bad).status_code == 401
    first = int(app_client.post("/api/auth/token", json=bad).headers["retry-after"])
    clock.advance(seconds=first)
    assert app_client.post("/api/auth/token", json=bad).status_code == 401  # counted
    second = int(app_client.post("/api/auth/token", json=bad).headers["retry-after"])
    assert second == 2 * first


def test_unknown_names_and_addresses_are_throttled_too(app_client, db):
    reasons = []
    for i in range(throttle.ADDRESS.lock_after + 1):  # one name each: only the address adds up
        r = app_client.post("/api/auth/token", json={"username": f"nobody{i}", "password": "x"})
        reasons.append(r.status_code)
    assert reasons[-1] == 429
    assert reasons.count(401) == throttle.ADDRESS.lock_after
    row = db.execute("SELECT detail FROM audit_log WHERE action = 'login_refused'").fetchone()
    assert row is not None
    assert row[0]["reason"] == "locked: address"
    failed = db.execute("SELECT DISTINCT detail->>'reason' FROM audit_log "
                        "WHERE action = 'login_failed'").fetchall()
    assert failed == [("unknown_user",)]
