"""Users and roles, the one set of rules for the People screens and the users API: list,
read, create, change (name, role, phone, password, active).

Passwords are hashed by `ward.hub.auth` (argon2id) and never read back. Changing a user's
role, password or deactivating them ends their live sessions at once, so the change holds
on the next request, not at the next log-in. An admin cannot deactivate or demote their own
account: the last admin locking everyone out is a support call, not a feature. Every change
writes its audit row in the caller's transaction. A refusal is a `PeopleError` whose
`status` is the HTTP answer both edges give (409 a conflict, 404 no such user, 422 a bad
value), so the page and the API cannot answer the same request differently.
"""

from __future__ import annotations

import datetime as dt
import enum
import re
from dataclasses import dataclass
from typing import Any, ClassVar

import psycopg
from psycopg import sql

from ward.hub import audit, auth
from ward.hub.auth import Role, User

Conn = psycopg.Connection[Any]

# NCSC guidance favours length over complexity rules: at least 8 characters.
MIN_PASSWORD = 8
# The users table's own check (2-64 of a-z, 0-9, '_', '.', '-'), on the normalised name.
USERNAME = re.compile(r"^[a-z0-9_.-]{2,64}$")
# What a form or a request may send: any case, surrounding spaces (normalised before USERNAME).
USERNAME_INPUT = r"^\s*[A-Za-z0-9_.-]{2,64}\s*$"


class PeopleError(ValueError):
    """A refused change, with a message for the admin; `status` is its HTTP answer."""

    status: ClassVar[int] = 409


class UnknownUser(PeopleError):
    status: ClassVar[int] = 404


class BadValue(PeopleError):
    status: ClassVar[int] = 422


class Keep(enum.Enum):
    """`update(phone=KEEP)`: leave the phone as it is (None clears it)."""

    KEEP = "keep"


KEEP = Keep.KEEP


@dataclass(frozen=True, slots=True)
class Person:
    id: int
    username: str
    display_name: str
    role: Role
    phone: str | None
    active: bool
    created_at: dt.datetime


_COLUMNS = sql.SQL("id, username, display_name, role, phone, active, created_at")


def _person(row: tuple[Any, ...]) -> Person:
    return Person(int(row[0]), str(row[1]), str(row[2]), Role(row[3]),
                  None if row[4] is None else str(row[4]), bool(row[5]), row[6])


def user_rows(conn: Conn, *, limit: int, offset: int, role: Role | None = None,
              active_first: bool = False) -> tuple[list[Person], int]:
    """A page of users (by username; `active_first`: the screen's order) and how many match."""
    where = sql.SQL("WHERE role = %s" if role else "")
    params: list[object] = [role.value] if role else []
    total = conn.execute(sql.SQL("SELECT count(*) FROM users {}").format(where),
                         params).fetchone()
    order = sql.SQL("active DESC, username" if active_first else "username")
    rows = conn.execute(sql.SQL("SELECT {} FROM users {} ORDER BY {} LIMIT %s OFFSET %s")
                        .format(_COLUMNS, where, order), [*params, limit, offset]).fetchall()
    return [_person(r) for r in rows], int(total[0]) if total else 0


def user_row(conn: Conn, user_id: int, *, lock: bool = False) -> Person:
    row = conn.execute(sql.SQL("SELECT {} FROM users WHERE id = %s{}").format(
        _COLUMNS, sql.SQL(" FOR UPDATE" if lock else "")), (user_id,)).fetchone()
    if row is None:
        raise UnknownUser(f"no user with id {user_id}")
    return _person(row)


def _check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise BadValue(f"the password needs at least {MIN_PASSWORD} characters")


def _taken(name: str) -> PeopleError:
    return PeopleError(f"the username {name!r} is taken")


def create(conn: Conn, admin: User, *, username: str, display_name: str, role: Role,
           password: str, now: dt.datetime, phone: str | None = None) -> Person:
    """A new user (the name trimmed and lower-cased; no display name: the username)."""
    name = auth.normalise_username(username)
    if not USERNAME.fullmatch(name):
        raise BadValue("a username is 2-64 characters of a-z, 0-9, '_', '.', '-'")
    _check_password(password)
    if conn.execute("SELECT 1 FROM users WHERE username = %s", (name,)).fetchone():
        raise _taken(name)
    try:
        with conn.transaction():  # a concurrent insert of the same name: the same answer
            created = auth.create_user(conn, name, password, role=role, phone=phone,
                                       display_name=display_name.strip() or name)
    except psycopg.errors.UniqueViolation as exc:
        raise _taken(name) from exc
    audit.record(conn, admin, "create", "user", now=now, entity_id=created.id,
                 detail={"username": created.username, "role": role.value})
    return user_row(conn, created.id)


def _revoke_sessions(conn: Conn, user_id: int, now: dt.datetime) -> None:
    conn.execute("UPDATE hub_sessions SET revoked_at = %s WHERE user_id = %s "
                 "AND revoked_at IS NULL", (now, user_id))


def update(conn: Conn, admin: User, user_id: int, *, now: dt.datetime,
           display_name: str | None = None, role: Role | None = None,
           active: bool | None = None, phone: str | Keep | None = KEEP,
           password: str | None = None) -> Person:
    """Change what is given (None: keep; `phone=None` clears it); the user as it now is.

    Refused, changing nothing: an admin's own deactivation or demotion, a short password, an
    empty display name. Only fields whose value changes are written and audited; a role
    change, a new password or a deactivation ends the user's sessions."""
    current = user_row(conn, user_id, lock=True)
    if user_id == admin.id and active is False:
        raise PeopleError("you cannot deactivate your own account")
    if user_id == admin.id and role is not None and role != Role.ADMIN:
        raise PeopleError("you cannot take the admin role from your own account")
    if password is not None:
        _check_password(password)
    name = None if display_name is None else display_name.strip()
    if name == "":
        raise BadValue("the display name cannot be empty")
    changes: dict[str, object] = {}
    if name is not None and name != current.display_name:
        changes["display_name"] = name
    if role is not None and role != current.role:
        changes["role"] = role.value
    if active is not None and active != current.active:
        changes["active"] = active
    if not isinstance(phone, Keep) and phone != current.phone:
        changes["phone"] = phone
    if password is not None:
        changes["password_hash"] = auth.hash_password(password)
    if not changes:
        return current
    conn.execute(sql.SQL("UPDATE users SET {} WHERE id = %s").format(sql.SQL(", ").join(
        sql.SQL("{} = %s").format(sql.Identifier(k)) for k in changes)),
        [*changes.values(), user_id])
    if "role" in changes or "password_hash" in changes or changes.get("active") is False:
        _revoke_sessions(conn, user_id, now)
    detail: dict[str, object] = {"fields": sorted(
        "password" if k == "password_hash" else k for k in changes)}
    if "role" in changes:
        detail["role"] = {"old": current.role.value, "new": changes["role"]}
    action = ("update" if "active" not in changes
              else "reactivate" if changes["active"] else "deactivate")
    audit.record(conn, admin, action, "user", now=now, entity_id=user_id, detail=detail)
    return user_row(conn, user_id)
