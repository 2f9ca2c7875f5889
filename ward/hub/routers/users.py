"""Users and roles (admins only). Passwords go in, never come out; hashes stay in the table."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from ward.hub import audit, auth
from ward.hub.auth import Role
from ward.hub.deps import DB, Now
from ward.hub.problems import NotFound
from ward.hub.routers.common import BIGINT_MAX, Admin, Conn, Limit, Offset, Page, Text

router = APIRouter(prefix="/api/users", tags=["users"])
UserId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
# NCSC guidance favours length over complexity rules: at least 8 characters.
MIN_PASSWORD = 8


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(pattern=r"^[a-z0-9_.-]{2,64}$")]
    display_name: Annotated[Text, Field(min_length=1, max_length=100)]
    role: Role
    password: Annotated[Text, Field(min_length=MIN_PASSWORD, max_length=1024)]
    phone: Annotated[Text | None, Field(max_length=32)] = None


class UserPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    display_name: Annotated[Text | None, Field(min_length=1, max_length=100)] = None
    role: Role | None = None
    active: bool | None = None
    phone: Annotated[Text | None, Field(max_length=32)] = None
    password: Annotated[Text | None, Field(min_length=MIN_PASSWORD, max_length=1024)] = None


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: Role
    phone: str | None
    active: bool
    created_at: dt.datetime


_SELECT = "SELECT id, username, display_name, role, phone, active, created_at FROM users "


def _out(row: tuple[Any, ...]) -> UserOut:
    return UserOut(**dict(zip(UserOut.model_fields, row, strict=True)))


def _load(conn: Conn, user_id: int) -> UserOut:
    row = conn.execute(_SELECT + "WHERE id = %s", (user_id,)).fetchone()
    if row is None:
        raise NotFound(f"no user with id {user_id}")
    return _out(row)


@router.get("", response_model=Page[UserOut])
def list_users(conn: DB, user: Admin, limit: Limit = 50, offset: Offset = 0,
               role: Role | None = None) -> Page[UserOut]:
    where, params = ("WHERE role = %s", [role.value]) if role else ("", [])
    total = conn.execute("SELECT count(*) FROM users " + where, params).fetchone()
    rows = conn.execute(_SELECT + where + " ORDER BY username LIMIT %s OFFSET %s",
                        [*params, limit, offset]).fetchall()
    return Page[UserOut](items=[_out(r) for r in rows], total=int(total[0]) if total else 0,
                         limit=limit, offset=offset)


@router.post("", response_model=UserOut, status_code=201)
def create_user(body: UserIn, conn: DB, now: Now, user: Admin) -> UserOut:
    created = auth.create_user(conn, body.username, body.password, role=body.role,
                               display_name=body.display_name, phone=body.phone)
    audit.record(conn, user, "create", "user", now=now, entity_id=created.id,
                 detail={"username": created.username, "role": created.role.value})
    return _load(conn, created.id)


@router.get("/{user_id}", response_model=UserOut)
def read_user(user_id: UserId, conn: DB, user: Admin) -> UserOut:
    return _load(conn, user_id)


@router.patch("/{user_id}", response_model=UserOut)
def update_user(user_id: UserId, body: UserPatch, conn: DB, now: Now, user: Admin) -> UserOut:
    before = _load(conn, user_id)
    changes: dict[str, Any] = body.model_dump(exclude_unset=True, exclude={"password"})
    changes = {k: (v.value if isinstance(v, Role) else v) for k, v in changes.items()
               if v is not None or k == "phone"}
    if body.password is not None:
        changes["password_hash"] = auth.hash_password(body.password)
    if changes:
        from psycopg import sql

        conn.execute(
            sql.SQL("UPDATE users SET {} WHERE id = %s").format(sql.SQL(", ").join(
                sql.SQL("{} = %s").format(sql.Identifier(k)) for k in changes)),
            [*changes.values(), user_id])
        if (body.active is False or body.password is not None
                or (body.role is not None and body.role != before.role)):
            # A deactivated user, a changed password or a changed role ends every live
            # session at once (as the people screen does: `people.set_role`).
            conn.execute("UPDATE hub_sessions SET revoked_at = %s WHERE user_id = %s "
                         "AND revoked_at IS NULL", (now, user_id))
    audit.record(conn, user, "update", "user", now=now, entity_id=user_id,
                 detail={"fields": sorted(k if k != "password_hash" else "password"
                                          for k in changes)})
    return _load(conn, user_id)
