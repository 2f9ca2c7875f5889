"""Request body limits, enforced before anything reads or parses a body.

Measured before this existed: one unauthenticated 100 MB POST took the hub from 76 to 302 MiB
and eight in parallel to 1.4 GiB, because FastAPI buffers a whole body before it can tell
that the route does not want it. `BodyLimit` is pure ASGI middleware in front of everything:

* a declared `Content-Length` above the route's limit is answered 413 at once — the app is
  never called, so not one body byte is read (uvicorn stops reading the socket after 64 KiB
  of unread body, so the rest stays in the client's send buffer);
* a body without a length (chunked) is counted as it streams through `receive`; the chunk
  that crosses the limit raises `BodyTooLarge` before it is handed on, so at most the limit
  plus one chunk is ever held.

Either way the answer is an RFC 9457 problem with `Connection: close`, so the server drops
the connection instead of draining the rest of the upload. `BodyTooLarge` is a Starlette
`HTTPException`: FastAPI's body parsing re-raises those unchanged, and the hub's problem
handler maps it, so the refusal looks the same whether it happens here or inside a route.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ward.hub.problems import PROBLEM_JSON, problem_body

# Every JSON or form body the hub accepts is a few KiB at most (the largest, a set of staff
# observations, is one entry per catalogue vital: ~4 KiB); 64 KiB leaves room for long notes
# and is still nothing to hold per request.
DEFAULT_MAX_BODY = 64 * 1024
# The log-in routes are the unauthenticated ones: a user name (64), a password (1,024) and a
# `next` path (2,000) fit in 4 KiB with their encoding; 8 KiB is all anyone is given.
LOGIN_MAX_BODY = 8 * 1024


@dataclass(frozen=True, slots=True)
class RouteLimit:
    """Bodies of `method` requests whose path matches `path` may be up to `max_bytes`."""

    method: str
    path: re.Pattern[str]
    max_bytes: int


@dataclass(frozen=True, slots=True)
class BodyLimits:
    """The default limit and the routes that differ from it (first match wins)."""

    default: int = DEFAULT_MAX_BODY
    routes: tuple[RouteLimit, ...] = ()

    def __post_init__(self) -> None:
        for limit in (self.default, *(r.max_bytes for r in self.routes)):
            if limit < 0:
                raise ValueError(f"a body limit must be ≥ 0 bytes, got {limit}")

    def for_request(self, method: str, path: str) -> int:
        for route in self.routes:
            if route.method == method and route.path.fullmatch(path):
                return route.max_bytes
        return self.default


def hub_limits(default: int = DEFAULT_MAX_BODY) -> BodyLimits:
    """The hub's table: the log-in routes get less than the default; none needs more."""
    return BodyLimits(default=default, routes=(
        RouteLimit("POST", re.compile(r"/login"), min(default, LOGIN_MAX_BODY)),
        RouteLimit("POST", re.compile(r"/api/auth/token"), min(default, LOGIN_MAX_BODY)),
    ))


class BodyTooLarge(HTTPException):
    """The request body is larger than its route allows (413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"the request body is larger than this route allows "
                              f"({limit} bytes)", headers={"Connection": "close"})


def declared_length(scope: Scope) -> int | None:
    """The request's `Content-Length`, None when absent; -1 when it is not a number."""
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isdigit() else -1
    return None


class BodyLimit:
    """ASGI middleware refusing oversized bodies before they are read (see the module)."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.for_request(str(scope["method"]), str(scope["path"]))
        declared = declared_length(scope)
        if declared is not None and (declared < 0 or declared > limit):
            await refuse(scope, send, limit)
            return
        received = 0
        started = False

        async def counted_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted_receive, tracked_send)
        except BodyTooLarge:
            if started:  # a streaming route read its body after answering: nothing to say
                raise
            await refuse(scope, send, limit)


async def refuse(scope: Scope, send: Send, limit: int) -> None:
    """Answer 413 as a problem document and ask the server to close the connection."""
    error = BodyTooLarge(limit)
    body = problem_body(413, "payload-too-large", error.detail, instance=str(scope["path"]))
    await send({"type": "http.response.start", "status": 413, "headers": [
        (b"content-type", PROBLEM_JSON.encode()), (b"content-length", str(len(body)).encode()),
        (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})
