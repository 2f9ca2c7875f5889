"""Logging in and out: a cookie session for browsers, bearer tokens for integrations.

Both log-in routes go through `ward.hub.logins.attempt`: throttled per account and per
address (429 with `Retry-After` while locked), every failure audited and committed even
though the request fails.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import BaseModel, ConfigDict, Field

from ward.hub import audit, auth, logins
from ward.hub.auth import ALL_ROLES, User
from ward.hub.deps import DB, SESSION_COOKIE, Now, SettingsDep, allow, token_from
from ward.hub.problems import TooManyRequests, Unauthorized
from ward.hub.session_end import Reason
from ward.hub.templating import render

router = APIRouter(tags=["session"])
AnyUser = Annotated[User, Depends(allow(*ALL_ROLES))]


class Credentials(BaseModel):
    model_config = ConfigDict(extra="forbid")
    username: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth 2 token type, not a secret
    expires_at: dt.datetime


class UserOut(BaseModel):
    id: int
    username: str
    display_name: str
    role: str


def _safe_next(target: str | None) -> str:
    # Only same-site paths: "/x" yes, "//evil.example" or "http://…" no (open redirect).
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/"


def _address(request: Request) -> str:
    # The peer address as uvicorn sees it (proxy headers are not trusted: see ward.hub.cli).
    return request.client.host if request.client else "unknown"


# What the log-in page says when a live page was signed out (hub.js: `/login?ended=<reason>`).
ENDED_MESSAGES = {
    Reason.REVOKED: "You were signed out: your session ended elsewhere (you logged out in "
                    "another tab or device, or your password was changed).",
    Reason.EXPIRED: "You were signed out: your session expired. Log in again to carry on.",
    Reason.DEACTIVATED: "You were signed out: your account has been deactivated. Ask an "
                        "administrator if you think this is a mistake.",
    Reason.ROLE_CHANGED: "You were signed out: your role was changed. Log in again to see "
                         "the pages of your new role.",
}


@router.get("/login", include_in_schema=False)
def login_page(request: Request, next: str | None = None, error: int = 0,
               ended: str | None = None) -> Response:
    # Only the known reasons are shown: the page never echoes text from the address.
    known = {r.value: r for r in Reason}
    message = ENDED_MESSAGES[known[ended]] if ended in known else None
    return render(request, "login.html", {"next": _safe_next(next), "error": bool(error),
                                          "ended": message})


@router.post("/login", include_in_schema=False)
def login_form(
    request: Request, conn: DB, now: Now, settings: SettingsDep,
    username: Annotated[str, Form(max_length=64)],
    password: Annotated[str, Form(max_length=1024)],
    next: Annotated[str, Form(max_length=2000)] = "/",
) -> Response:
    user = logins.attempt(conn, username, password, address=_address(request), kind="form",
                          now=now)
    if isinstance(user, logins.Refused) and user.retry_after_s is not None:
        minutes = -(-user.retry_after_s // 60)
        response = render(request, "login.html", {"next": _safe_next(next), "error": False,
                                                   "locked_minutes": minutes})
        response.status_code = 429
        response.headers["Retry-After"] = str(user.retry_after_s)
        return response
    if isinstance(user, logins.Refused):
        return RedirectResponse(f"/login?error=1&next={_safe_next(next)}", status_code=303)
    ttl = dt.timedelta(seconds=settings.hub_session_ttl_s)
    token, _ = auth.issue_token(conn, user, kind="cookie", now=now, ttl=ttl)
    audit.record(conn, user, "login", "session", now=now, detail={"kind": "cookie"})
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(SESSION_COOKIE, token, max_age=settings.hub_session_ttl_s,
                        httponly=True, samesite="strict", secure=settings.hub_cookie_secure,
                        path="/")
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request, conn: DB, now: Now, user: AnyUser) -> Response:
    token = token_from(request)
    if token:
        auth.revoke_token(conn, token, now=now)
    audit.record(conn, user, "logout", "session", now=now)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


@router.post("/api/auth/token", response_model=TokenOut,
             responses={401: {"description": "wrong username or password"},
                        429: {"description": "locked after repeated failures; see Retry-After"}})
def issue_token(request: Request, body: Credentials, conn: DB, now: Now,
                settings: SettingsDep) -> TokenOut:
    """Exchange a username and password for a bearer token that expires.

    Throttled: after repeated failures for the account or from the address, 429 with
    `Retry-After` until the lock ends (the password is not even checked meanwhile)."""
    user = logins.attempt(conn, body.username, body.password, address=_address(request),
                          kind="token", now=now)
    if isinstance(user, logins.Refused) and user.retry_after_s is not None:
        raise TooManyRequests("too many failed log-ins for this account or address; "
                              "try again later", retry_after_s=user.retry_after_s)
    if isinstance(user, logins.Refused):
        raise Unauthorized("wrong username or password")
    ttl = dt.timedelta(seconds=settings.hub_token_ttl_s)
    token, expires = auth.issue_token(conn, user, kind="bearer", now=now, ttl=ttl)
    audit.record(conn, user, "login", "session", now=now, detail={"kind": "bearer"})
    return TokenOut(access_token=token, expires_at=expires)


@router.delete("/api/auth/token", status_code=204)
def revoke_token(request: Request, conn: DB, now: Now, user: AnyUser) -> Response:
    """Revoke the token (or session) this request was made with."""
    token = token_from(request)
    if token:
        auth.revoke_token(conn, token, now=now)
    audit.record(conn, user, "logout", "session", now=now)
    return Response(status_code=204)


@router.get("/api/me", response_model=UserOut)
def me(user: AnyUser) -> UserOut:
    return UserOut(id=user.id, username=user.username, display_name=user.display_name,
                   role=user.role.value)
