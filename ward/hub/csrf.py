"""Cross-site request forgery: a change made with the session cookie must come from the hub.

SameSite=Strict alone was not enough (a cookie POST with a foreign `Origin` was accepted: older
browsers, same-site subdomains and browser bugs all defeat it). So every state-changing
request (anything but GET, HEAD, OPTIONS) that carries the session cookie, and the log-in
form itself (login CSRF would sign a nurse in as someone else), must show that a page of the
hub sent it:

1. an `Origin` header equal to the hub's own origin (the scheme it is served on and the
   `Host` the browser addressed) or to one of `VW_HUB_ALLOWED_ORIGINS`; else
2. when `Origin` is missing or `null`: `Sec-Fetch-Site: same-origin` (a header no page can
   set); else
3. a `Referer` whose origin is allowed. Nothing at all is refused.

Bearer-token calls are not affected: a browser never attaches an `Authorization` header on
its own, so a forged request cannot carry one. The pages send `Referrer-Policy: same-origin`
(not `no-referrer`): under `no-referrer` a browser sends `Origin: null` even on a same-origin
form POST, which would leave only rule 2.

`refusal` is the pure decision; `OriginCheck` is the thin ASGI middleware that applies it.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Iterable, Mapping

from starlette.types import ASGIApp, Receive, Scope, Send

from ward.hub.problems import PROBLEM_JSON, problem_body

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The session cookie's name (ward.hub.deps.SESSION_COOKIE; spelt here to keep this module
# free of the request-dependency layer, and checked equal by a test).
SESSION_COOKIE = "vw_session"
# Always checked, cookie or not: the log-in form (login CSRF).
ALWAYS_CHECKED = frozenset({("POST", "/login")})


def origin_of(url: str) -> str | None:
    """`scheme://host[:port]` of an absolute URL, lower-cased; None when it has none."""
    parts = urllib.parse.urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def parse_origins(text: str) -> frozenset[str]:
    """`VW_HUB_ALLOWED_ORIGINS`: comma-separated origins; raises ValueError naming a bad one."""
    found = set()
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        origin = origin_of(item)
        if origin is None or origin != item.lower().rstrip("/"):
            raise ValueError(f"{item!r} is not an origin (scheme://host[:port], no path)")
        found.add(origin)
    return frozenset(found)


def _has_session_cookie(cookie_header: str) -> bool:
    return any(part.strip().startswith(SESSION_COOKIE + "=")
               for part in cookie_header.split(";"))


def refusal(method: str, path: str, headers: Mapping[str, str], own_origin: str,
            allowed: Iterable[str] = ()) -> str | None:
    """Why this request must be refused as cross-site, or None when it may proceed.

    `headers` are lower-case names; `own_origin` is where the hub was addressed."""
    if method in SAFE_METHODS:
        return None
    scheme, _, token = headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return None
    if ((method, path) not in ALWAYS_CHECKED
            and not _has_session_cookie(headers.get("cookie", ""))):
        return None  # no cookie: nothing a forged request could borrow
    trusted = {own_origin.lower(), *allowed}
    origin = headers.get("origin", "").strip().lower()
    if origin and origin != "null":
        return None if origin in trusted else f"Origin {origin} is not this hub"
    fetch_site = headers.get("sec-fetch-site")
    if fetch_site is not None:
        return None if fetch_site == "same-origin" else f"Sec-Fetch-Site is {fetch_site}"
    referer = headers.get("referer")
    if referer:
        return None if origin_of(referer) in trusted else "Referer is not this hub"
    return "a change made with the session cookie must carry this hub's Origin"


class OriginCheck:
    """ASGI middleware refusing cross-site cookie requests with a 403 problem."""

    def __init__(self, app: ASGIApp, allowed: frozenset[str]) -> None:
        self.app = app
        self.allowed = allowed

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers: dict[str, str] = {}
        for raw_name, raw_value in scope.get("headers", ()):
            name, value = raw_name.decode("latin-1").lower(), raw_value.decode("latin-1")
            # Several Cookie headers are one cookie list; for the rest the first counts.
            if name == "cookie" and name in headers:
                headers[name] += "; " + value
            else:
                headers.setdefault(name, value)
        own = f"{scope.get('scheme', 'http')}://{headers.get('host', '')}"
        why = refusal(str(scope["method"]), str(scope["path"]), headers, own, self.allowed)
        if why is None:
            await self.app(scope, receive, send)
            return
        body = problem_body(403, "cross-site-request", why, instance=str(scope["path"]))
        await send({"type": "http.response.start", "status": 403, "headers": [
            (b"content-type", PROBLEM_JSON.encode()),
            (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})
