"""Every HTTP error as RFC 9457 problem details, mapped in this one place.

Handlers turn our own `Problem`, Starlette's 404/405, FastAPI's validation errors, domain
errors, alerting errors and database constraint violations into `application/problem+json`.
Bad input is never a 500: a constraint the database enforces comes back as 409, a value it
cannot store as 422. An unexpected exception is a 500 whose body says nothing about internals
(the log has the traceback; neither carries request bodies, so no secret reaches the log).
"""

from __future__ import annotations

import http
import json
import logging
from collections.abc import Mapping
from typing import Any

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from ward.db.registry import RegistryError
from ward.domain.errors import DomainError, InvalidTransition

log = logging.getLogger(__name__)

PROBLEM_JSON = "application/problem+json"
# Problem types are relative URIs under our API docs; clients match on them, not on titles.
TYPE_BASE = "/api/problems/"


class Problem(Exception):
    """An error the API reports on purpose."""

    status = 400
    kind = "bad-request"

    def __init__(self, detail: str, *, extra: Mapping[str, Any] | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.extra = dict(extra or {})
        self.headers = dict(headers or {})


class Unauthorized(Problem):
    status = 401
    kind = "unauthorized"


class Forbidden(Problem):
    status = 403
    kind = "forbidden"


class NotFound(Problem):
    status = 404
    kind = "not-found"


class Conflict(Problem):
    status = 409
    kind = "conflict"


class ConflictingReading(Conflict):
    """A reading's slot (device, code, instant) already holds another value or unit: not a
    duplicate, so clients tell it apart by its type (the gateway's `conflicting_reading`)."""

    kind = "conflicting-reading"


class Invalid(Problem):
    status = 422
    kind = "invalid"


class TooManyRequests(Problem):
    """Refused until `retry_after_s` have passed (sent as `Retry-After`)."""

    status = 429
    kind = "too-many-requests"

    def __init__(self, detail: str, *, retry_after_s: int) -> None:
        super().__init__(detail, extra={"retry_after_s": retry_after_s},
                         headers={"Retry-After": str(retry_after_s)})


def _problem(status: int, kind: str, detail: str | None, instance: str | None,
             extra: Mapping[str, Any] | None) -> dict[str, Any]:
    body: dict[str, Any] = {
        "type": TYPE_BASE + kind,
        "title": http.HTTPStatus(status).phrase,
        "status": status,
    }
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra or {})
    return body


def problem_body(status: int, kind: str, detail: str | None, *, instance: str | None = None,
                 extra: Mapping[str, Any] | None = None) -> bytes:
    """The problem document as bytes, for the ASGI middlewares that answer before routing."""
    return json.dumps(_problem(status, kind, detail, instance, extra)).encode()


def problem_response(
    status: int, kind: str, detail: str | None, *, instance: str | None = None,
    extra: Mapping[str, Any] | None = None, headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    return JSONResponse(_problem(status, kind, detail, instance, extra), status_code=status,
                        media_type=PROBLEM_JSON, headers=headers)


def _wants_html_page(request: Request) -> bool:
    return (
        request.method == "GET"
        and not request.url.path.startswith("/api/")
        and "text/html" in request.headers.get("accept", "")
    )


async def _on_problem(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, Problem)  # noqa: S101 - registered for Problem only
    if isinstance(exc, Unauthorized) and _wants_html_page(request):
        # A person opening a page is sent to log in, not shown JSON.
        return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
    headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else {}
    return problem_response(exc.status, exc.kind, exc.detail, instance=request.url.path,
                            extra=exc.extra, headers={**headers, **exc.headers})


_KIND_BY_STATUS = {404: "not-found", 405: "method-not-allowed", 401: "unauthorized",
                   403: "forbidden", 409: "conflict", 413: "payload-too-large",
                   422: "invalid", 429: "too-many-requests"}


async def _on_http(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    kind = _KIND_BY_STATUS.get(exc.status_code, "http-error")
    detail = exc.detail if isinstance(exc.detail, str) else None
    return problem_response(exc.status_code, kind, detail, instance=request.url.path,
                            headers=exc.headers)


def _safe_errors(exc: RequestValidationError) -> list[dict[str, Any]]:
    # Never echo the input: it may be a password or huge; location, message and type suffice.
    return [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", "")),
         "type": str(err.get("type", ""))}
        for err in exc.errors()
    ]


async def _on_validation(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    return problem_response(422, "validation", "the request did not validate",
                            instance=request.url.path, extra={"errors": _safe_errors(exc)})


async def _on_domain(request: Request, exc: Exception) -> Response:
    conflict = isinstance(exc, InvalidTransition | RegistryError)
    return problem_response(409 if conflict else 422, "conflict" if conflict else "invalid",
                            str(exc), instance=request.url.path)


async def _on_integrity(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, psycopg.errors.IntegrityError)  # noqa: S101
    constraint = exc.diag.constraint_name
    detail = "the change conflicts with the current state of the record"
    extra = {"constraint": constraint} if constraint else None
    return problem_response(409, "conflict", detail, instance=request.url.path, extra=extra)


async def _on_data(request: Request, exc: Exception) -> Response:
    # Values the database cannot hold (out-of-range numbers, NUL characters in text).
    return problem_response(422, "invalid", "a value is out of range or malformed",
                            instance=request.url.path)


async def _on_unexpected(request: Request, exc: Exception) -> Response:
    log.error("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
    return problem_response(500, "internal", "an unexpected error occurred; it has been logged",
                            instance=request.url.path)


def install(app: FastAPI) -> None:
    """Register every handler on `app`."""
    from alerting.errors import AlertingError, AlertNotFound, AlertTransitionError

    async def _on_alerting(request: Request, exc: Exception) -> Response:
        if isinstance(exc, AlertNotFound):
            return problem_response(404, "not-found", str(exc), instance=request.url.path)
        if isinstance(exc, AlertTransitionError):
            return problem_response(409, "conflict", str(exc), instance=request.url.path)
        return problem_response(422, "invalid", str(exc), instance=request.url.path)

    app.add_exception_handler(Problem, _on_problem)
    app.add_exception_handler(StarletteHTTPException, _on_http)
    app.add_exception_handler(RequestValidationError, _on_validation)
    app.add_exception_handler(AlertingError, _on_alerting)
    app.add_exception_handler(DomainError, _on_domain)
    app.add_exception_handler(psycopg.errors.IntegrityError, _on_integrity)
    app.add_exception_handler(psycopg.DataError, _on_data)
    app.add_exception_handler(Exception, _on_unexpected)
