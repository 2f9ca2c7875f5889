"""Users and roles (admins only). Passwords go in, never come out; hashes stay in the table.

Every rule is `ward.hub.people`'s, the same the People screens keep (a role change, a new
password or a deactivation ends the user's sessions; an admin's own deactivation or demotion
and a taken username are 409s with a message saying why); this router reads JSON and maps a
refusal to its problem.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, NoReturn

from fastapi import APIRouter, Path
from pydantic import BaseModel, ConfigDict, Field

from ward.hub import people
from ward.hub.auth import Role
from ward.hub.deps import DB, Now
from ward.hub.problems import Conflict, Invalid, NotFound, Problem
from ward.hub.routers.common import BIGINT_MAX, Admin, Limit, Offset, Page, Text

router = APIRouter(prefix="/api/users", tags=["users"])
UserId = Annotated[int, Path(ge=1, le=BIGINT_MAX)]
MIN_PASSWORD = people.MIN_PASSWORD
_PROBLEMS: dict[int, type[Problem]] = {404: NotFound, 409: Conflict, 422: Invalid}


class UserIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: Annotated[str, Field(pattern=people.USERNAME_INPUT,
                                   description="stored trimmed and lower-case")]
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


def _out(person: people.Person) -> UserOut:
    return UserOut(id=person.id, username=person.username, display_name=person.display_name,
                   role=person.role, phone=person.phone, active=person.active,
                   created_at=person.created_at)


def _refused(exc: people.PeopleError) -> NoReturn:
    raise _PROBLEMS[exc.status](str(exc)) from exc


@router.get("", response_model=Page[UserOut])
def list_users(conn: DB, user: Admin, limit: Limit = 50, offset: Offset = 0,
               role: Role | None = None) -> Page[UserOut]:
    rows, total = people.user_rows(conn, limit=limit, offset=offset, role=role)
    return Page[UserOut](items=[_out(p) for p in rows], total=total, limit=limit,
                         offset=offset)


@router.post("", response_model=UserOut, status_code=201,
             responses={409: {"description": "the username is taken"}})
def create_user(body: UserIn, conn: DB, now: Now, user: Admin) -> UserOut:
    try:
        return _out(people.create(conn, user, username=body.username,
                                  display_name=body.display_name, role=body.role,
                                  password=body.password, phone=body.phone, now=now))
    except people.PeopleError as exc:
        _refused(exc)


@router.get("/{user_id}", response_model=UserOut)
def read_user(user_id: UserId, conn: DB, user: Admin) -> UserOut:
    try:
        return _out(people.user_row(conn, user_id))
    except people.PeopleError as exc:
        _refused(exc)


@router.patch("/{user_id}", response_model=UserOut,
              responses={409: {"description": "your own deactivation or demotion"}})
def update_user(user_id: UserId, body: UserPatch, conn: DB, now: Now, user: Admin) -> UserOut:
    """Change what is sent (`phone: null` clears it); a role change, a new password or a
    deactivation ends the user's sessions."""
    try:
        return _out(people.update(
            conn, user, user_id, now=now, display_name=body.display_name, role=body.role,
            active=body.active, password=body.password,
            phone=body.phone if "phone" in body.model_fields_set else people.KEEP))
    except people.PeopleError as exc:
        _refused(exc)
