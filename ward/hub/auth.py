"""Who is asking: argon2 password hashes, roles, and expiring sessions and bearer tokens.

A session (browser cookie) and a bearer token (integrations) are the same thing underneath: a
random 256-bit token whose SHA-256 is stored in `hub_sessions` with an expiry. The clear token
exists only in the client's hands, so a leaked table cannot be replayed, and logging out
revokes it server-side. Passwords are hashed with argon2id (argon2-cffi's defaults, RFC 9106).
"""

from __future__ import annotations

import datetime as dt
import enum
import hashlib
import secrets
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

import psycopg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from ward.hub.session_end import SessionState, refusal

Conn = psycopg.Connection[Any]

_HASHER = PasswordHasher()
# Verified against when the username does not exist, so that a missing user costs the same
# time as a wrong password and usernames cannot be probed by timing.
_DUMMY_HASH = _HASHER.hash("not a real password")
# 32 random bytes: 256 bits, far beyond guessing within any token's lifetime.
_TOKEN_BYTES = 32


class Role(enum.StrEnum):
    HUB_NURSE = "hub_nurse"
    CLINICIAN = "clinician"
    ADMIN = "admin"
    SAFETY_OFFICER = "safety_officer"


ALL_ROLES = frozenset(Role)
# Who may act on clinical state (alerts, admissions, readings entered on a patient's behalf).
CLINICAL = frozenset({Role.HUB_NURSE, Role.CLINICIAN})
# Care-plan decisions (Scale 2, thresholds, ceiling of care) need a competent clinical
# decision-maker (RCP NEWS2: Scale 2 only on a clinician's instruction).
PRESCRIBERS = frozenset({Role.CLINICIAN})
ADMINS = frozenset({Role.ADMIN})
# The audit log viewer: the clinical-safety officer, and admins (who answer access requests).
AUDITORS = frozenset({Role.SAFETY_OFFICER, Role.ADMIN})
# Device register / assign: nurses kit patients out; admins manage the fleet.
DEVICE_MANAGERS = frozenset({Role.HUB_NURSE, Role.ADMIN})


@dataclass(frozen=True, slots=True)
class User:
    id: int
    username: str
    display_name: str
    role: Role


def hash_password(password: str) -> str:
    return _HASHER.hash(password)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def normalise_username(username: str) -> str:
    """User names are stored trimmed and lower-case; the same form keys the log-in throttle."""
    return username.strip().lower()


def check_password(conn: Conn, username: str, password: str) -> User | str:
    """The active user with this name and password, else why not ("unknown_user",
    "inactive_user", "wrong_password") — for the audit only, never for the client. The same
    argon2 cost is paid either way."""
    row = conn.execute(
        "SELECT id, username, display_name, role, password_hash, active FROM users "
        "WHERE username = %s",
        (normalise_username(username),),
    ).fetchone()
    if row is None:
        _verify(_DUMMY_HASH, password)
        return "unknown_user"
    if not _verify(str(row[4]), password):
        return "wrong_password"
    if not row[5]:
        return "inactive_user"
    return User(int(row[0]), str(row[1]), str(row[2]), Role(row[3]))


def authenticate(conn: Conn, username: str, password: str) -> User | None:
    """The active user with this name and password, else None (same cost either way)."""
    result = check_password(conn, username, password)
    return result if isinstance(result, User) else None


def token_digest(token: str) -> bytes:
    """The SHA-256 a token is stored (and looked up) by."""
    return hashlib.sha256(token.encode()).digest()


def issue_token(
    conn: Conn, user: User, *, kind: str, now: dt.datetime, ttl: dt.timedelta
) -> tuple[str, dt.datetime]:
    """A new token for `user` and its expiry; the caller commits."""
    token = secrets.token_urlsafe(_TOKEN_BYTES)
    expires = now + ttl
    conn.execute(
        "INSERT INTO hub_sessions (token_hash, user_id, kind, created_at, expires_at) "
        "VALUES (%s, %s, %s, %s, %s)",
        (token_digest(token), user.id, kind, now, expires),
    )
    return token, expires


def user_for_token(conn: Conn, token: str, *, now: dt.datetime) -> User | None:
    """The user a live token belongs to, else None: the rule is `session_end.refusal`, the
    same one that ends open live streams."""
    if not token or len(token) > 256:
        return None
    row = conn.execute(
        "SELECT u.id, u.username, u.display_name, u.role, s.expires_at, s.revoked_at, u.active "
        "FROM hub_sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = %s",
        (token_digest(token),),
    ).fetchone()
    if row is None or refusal(SessionState(row[4], row[5], bool(row[6]), str(row[3])),
                              now=now) is not None:
        return None
    return User(int(row[0]), str(row[1]), str(row[2]), Role(row[3]))


# %b: the hashes travel as one binary bytea[] (32 bytes each, not 67 characters of hex);
# for 1,000 of them this was about half the text form's time, and an unnest join no faster
# (benchmarks/bench_session_check.py compares the text form in the same run).
SESSION_STATES = (
    "SELECT s.token_hash, s.expires_at, s.revoked_at, u.active, u.role "
    "FROM hub_sessions s JOIN users u ON u.id = s.user_id WHERE s.token_hash = ANY(%b)"
)


def session_states(conn: Conn, token_hashes: Collection[bytes]) -> dict[bytes, SessionState]:
    """The current state of each of these sessions, by token hash, in one query (the live
    stream watcher's once-a-second check); a hash with no session is absent."""
    if not token_hashes:
        return {}
    rows = conn.execute(SESSION_STATES, (list(token_hashes),)).fetchall()
    return {bytes(r[0]): SessionState(r[1], r[2], bool(r[3]), str(r[4])) for r in rows}


def revoke_token(conn: Conn, token: str, *, now: dt.datetime) -> None:
    conn.execute(
        "UPDATE hub_sessions SET revoked_at = %s WHERE token_hash = %s AND revoked_at IS NULL",
        (now, token_digest(token)),
    )


# A session has ended at its revocation or its expiry, whichever came first (LEAST skips a
# NULL revoked_at). Nothing else references a session row: audit rows of entity "session"
# name the user, never the token hash, so pruning leaves the audit trail whole.
_PRUNE_SESSIONS = ("DELETE FROM hub_sessions "
                   "WHERE LEAST(expires_at, revoked_at) < %s::timestamptz - %s::interval")


def prune_sessions(conn: Conn, older_than: dt.timedelta, *, now: dt.datetime) -> int:
    """Delete the sessions and tokens that ended (expired or revoked) more than `older_than`
    before `now`; how many. The caller commits."""
    return conn.execute(_PRUNE_SESSIONS, (now, older_than)).rowcount


def create_user(
    conn: Conn, username: str, password: str, *, role: Role, display_name: str | None = None,
    phone: str | None = None,
) -> User:
    """Insert a user with an argon2 hash; raises psycopg's UniqueViolation on a duplicate."""
    name = normalise_username(username)
    row = conn.execute(
        "INSERT INTO users (username, display_name, role, password_hash, phone) "
        "VALUES (%s, %s, %s, %s, %s) RETURNING id",
        (name, display_name or name, role.value, hash_password(password), phone),
    ).fetchone()
    assert row is not None  # noqa: S101 - INSERT … RETURNING always returns its row
    return User(int(row[0]), name, display_name or name, role)


# (username, password, role, display name) — printed by `vward demo`; created only when the
# demo asks for them (VW_DEMO_USERS=1) and the users table is empty.
DEMO_USERS = (
    ("nurse", "nurse", Role.HUB_NURSE, "Demo Hub Nurse"),
    ("doctor", "doctor", Role.CLINICIAN, "Demo Clinician"),
    ("admin", "admin", Role.ADMIN, "Demo Administrator"),
    ("safety", "safety", Role.SAFETY_OFFICER, "Demo Clinical Safety Officer"),
)


def ensure_demo_users(conn: Conn) -> bool:
    """Create the demo users if there are no users at all; True when created."""
    conn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE")
    row = conn.execute("SELECT count(*) FROM users").fetchone()
    if row is None or int(row[0]) > 0:
        return False
    for username, password, role, display in DEMO_USERS:
        create_user(conn, username, password, role=role, display_name=display)
    return True
