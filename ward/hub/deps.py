"""Shared request dependencies: the database connection, the clock, the user and their role.

Endpoints are plain (sync) functions: FastAPI runs them in its threadpool, each borrowing one
connection from a sync `psycopg_pool.ConnectionPool`. That lets them call the alerting core's
sync actions (`alerting.actions`, `alerting.care_plan`) in the same transaction as the audit
record, which an async pool could only do by hopping threads. The transaction commits when the
endpoint returns (dependency scope "function": before the response is sent, so a client that
reads its own write always finds it) and rolls back if it raises.

Every route names the roles allowed through `allow(...)`; a test walks the route table and
fails if any route (other than the few public ones) lacks it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Annotated, Any

import psycopg
from fastapi import Depends, Request
from psycopg_pool import ConnectionPool

from ward.hub import wardcache
from ward.hub.auth import Role, User, user_for_token
from ward.hub.problems import Forbidden, Unauthorized
from ward.settings import Settings

Conn = psycopg.Connection[Any]
SESSION_COOKIE = "vw_session"
# Attribute that marks a dependency as a role check (read by the route-table test).
ROLES_ATTRIBUTE = "vw_roles"


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_pool(request: Request) -> ConnectionPool[Any]:
    pool: ConnectionPool[Any] = request.app.state.pool
    return pool


def _db(request: Request) -> Iterator[Conn]:
    with get_pool(request).connection() as conn:
        changed = wardcache.track(conn)
        try:
            yield conn
        finally:
            wardcache.untrack(conn)
    # Committed: rows this request changed are stale here at once, before the client can read
    # them back (the NOTIFY sent in the same transaction reaches the listener a little later).
    if changed:
        cache: wardcache.WardCache = request.app.state.ward_cache
        cache.invalidate(changed)


def _now(request: Request) -> dt.datetime:
    clock: Callable[[], dt.datetime] = request.app.state.clock
    return clock()


DB = Annotated[Conn, Depends(_db, scope="function")]
Now = Annotated[dt.datetime, Depends(_now)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def token_from(request: Request) -> str | None:
    """The bearer token from `Authorization`, else the session cookie."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        return value.strip()
    return request.cookies.get(SESSION_COOKIE)


def current_user(request: Request, conn: DB, now: Now) -> User:
    token = token_from(request)
    user = user_for_token(conn, token, now=now) if token else None
    if user is None:
        raise Unauthorized("log in first: the session or token is missing or has expired")
    request.state.user = user
    return user


def allow(*roles: Role) -> Callable[..., User]:
    """A dependency admitting only users holding one of `roles`."""
    allowed = frozenset(roles)

    def _check(user: Annotated[User, Depends(current_user)]) -> User:
        if user.role not in allowed:
            names = ", ".join(sorted(r.value for r in allowed))
            raise Forbidden(f"this needs one of the roles: {names}")
        return user

    setattr(_check, ROLES_ATTRIBUTE, allowed)
    return _check
