"""Users and roles for the admin screen: list, create, change role, deactivate.

Passwords are hashed by `ward.hub.auth` (argon2id) and never read back. Deactivating a user
(or changing their role) ends their live sessions at once, so the change holds on the next
request, not at the next log-in. An admin cannot deactivate or demote their own account:
the last admin locking everyone out is a support call, not a feature. Every change writes
its audit row in the caller's transaction.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import psycopg

from ward.hub import audit, auth
from ward.hub.auth import Role, User

Conn = psycopg.Connection[Any]


class PeopleError(ValueError):
    """A refused change, with a message for the admin."""


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    username: str
    display_name: str
    role: Role
    active: bool
    created_at: dt.datetime


def list_people(conn: Conn, *, limit: int, offset: int) -> tuple[list[Person], int]:
    total = conn.execute("SELECT count(*) FROM users").fetchone()
    rows = conn.execute(
        "SELECT id, username, display_name, role, active, created_at FROM users "
        "ORDER BY active DESC, username LIMIT %s OFFSET %s", (limit, offset)).fetchall()
    people = [Person(int(r[0]), str(r[1]), str(r[2]), Role(r[3]), bool(r[4]), r[5])
              for r in rows]
    return people, int(total[0]) if total else 0


def create(conn: Conn, admin: User, *, username: str, display_name: str, role: Role,
           password: str, now: dt.datetime) -> User:
    name = auth.normalise_username(username)
    if conn.execute("SELECT 1 FROM users WHERE username = %s", (name,)).fetchone():
        raise PeopleError(f"the username {name!r} is taken")
    created = auth.create_user(conn, name, password, role=role,
                               display_name=display_name.strip() or name)
    audit.record(conn, admin, "create", "user", now=now, entity_id=created.id,
                 detail={"username": created.username, "role": role.value, "screen": True})
    return created


def _revoke_sessions(conn: Conn, user_id: int, now: dt.datetime) -> None:
    conn.execute("UPDATE hub_sessions SET revoked_at = %s WHERE user_id = %s "
                 "AND revoked_at IS NULL", (now, user_id))


def _current(conn: Conn, user_id: int) -> tuple[str, bool]:
    row = conn.execute("SELECT role, active FROM users WHERE id = %s FOR UPDATE",
                       (user_id,)).fetchone()
    if row is None:
        raise PeopleError(f"no user with id {user_id}")
    return str(row[0]), bool(row[1])


def set_role(conn: Conn, admin: User, user_id: int, role: Role, *, now: dt.datetime) -> None:
    old, _ = _current(conn, user_id)
    if user_id == admin.id and role != Role.ADMIN:
        raise PeopleError("you cannot take the admin role from your own account")
    if old == role.value:
        return
    conn.execute("UPDATE users SET role = %s WHERE id = %s", (role.value, user_id))
    _revoke_sessions(conn, user_id, now)
    audit.record(conn, admin, "update", "user", now=now, entity_id=user_id,
                 detail={"fields": ["role"], "old": old, "new": role.value})


def set_active(conn: Conn, admin: User, user_id: int, active: bool, *, now: dt.datetime
               ) -> None:
    _, was = _current(conn, user_id)
    if user_id == admin.id and not active:
        raise PeopleError("you cannot deactivate your own account")
    if was == active:
        return
    conn.execute("UPDATE users SET active = %s WHERE id = %s", (active, user_id))
    if not active:
        _revoke_sessions(conn, user_id, now)
    audit.record(conn, admin, "deactivate" if not active else "reactivate", "user", now=now,
                 entity_id=user_id, detail={"fields": ["active"], "new": active})
