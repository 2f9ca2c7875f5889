"""The hub's FastAPI application: `create_app(settings)` wires pool, listener and routers.

The lifespan opens one sync connection pool (see `ward.hub.deps` for why sync) and one async
LISTEN connection (`ward.hub.events`), and starts the session watcher that ends live streams
whose session ended (`ward.hub.session_watch`); nothing is created at import time. Security headers are
added to every response by a small ASGI middleware (it leaves streamed SSE bodies alone);
request bodies are limited before anything reads them (`ward.hub.limits`), and cookie
requests that change state must come from the hub's own origin (`ward.hub.csrf`).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from psycopg_pool import ConnectionPool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ward.hub import (
    auth,
    csrf,
    events,
    limits,
    problems,
    session_watch,
    templating,
    wardcache,
)
from ward.hub.routers import (
    admissions,
    alerts,
    care_plan_pages,
    care_plans,
    devices,
    fhir_api,
    fhir_risk,
    health,
    manager_pages,
    observation_tasks,
    observations,
    pages,
    patients,
    people_pages,
    readings,
    report_pages,
    reports_api,
    risk,
    session,
    stream,
    tasks,
    users,
    ward,
    worklist,
)
from ward.settings import Settings, SettingsError

log = logging.getLogger(__name__)
HERE = Path(__file__).parent

# No inline scripts or styles anywhere: every script and stylesheet is a file under /static,
# so the policy can forbid 'unsafe-inline'. SVG charts use presentation attributes, not style.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    # same-origin, not no-referrer: under no-referrer browsers send `Origin: null` even on our
    # own form POSTs, and the CSRF check (ward.hub.csrf) needs the real origin. Other sites
    # still get no Referer at all.
    (b"referrer-policy", b"same-origin"),
    (b"x-content-type-options", b"nosniff"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=()"),
    (b"cache-control", b"no-store"),
)


class SecurityHeaders:
    """Adds the security headers to every HTTP response (static files may be cached)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        is_static = str(scope.get("path", "")).startswith("/static/")

        async def _send(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                for name, value in SECURITY_HEADERS:
                    if name == b"cache-control" and is_static:
                        continue
                    if name not in present:
                        headers.append((name, value))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, _send)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


async def _refresh_ward(app: FastAPI) -> None:
    """Reload the ward cache once LISTEN is up, then every FULL_REFRESH_S (safety net)."""
    cache: wardcache.WardCache = app.state.ward_cache
    broadcaster: events.Broadcaster = app.state.broadcaster
    settings: Settings = app.state.settings

    def _reload() -> None:
        with app.state.pool.connection() as conn:
            cache.reload(conn, now=app.state.clock(), beds=settings.ward_beds)

    while True:
        await broadcaster.listening.wait()
        try:
            await asyncio.to_thread(_reload)
        except Exception:  # the next request reloads instead; keep the loop alive
            log.exception("ward cache reload failed")
        await asyncio.sleep(wardcache.FULL_REFRESH_S)


def _utc_session(conn: psycopg.Connection[Any]) -> None:
    """Each pooled session runs in UTC, so psycopg returns instants with `datetime.UTC`.

    With the server's default zone ('Etc/UTC' here) it returns `ZoneInfo('Etc/UTC')`
    instants, and a comparison with one cost ~3 µs where one between `datetime.UTC` instants
    cost too little to measure beside a no-op call (timeit, loaded machine, 2026-12-02): the
    ward rows and the worklist compare thousands per request.
    The instants are the same; only their tzinfo object changes."""
    conn.execute("SET TIME ZONE 'UTC'")
    conn.commit()


def create_app(
    settings: Settings, *, clock: Callable[[], dt.datetime] = _utc_now, listen: bool = True,
) -> FastAPI:
    """The hub application. `clock` is injectable for tests; `listen=False` skips LISTEN."""
    conninfo = settings.database_conninfo()
    try:
        allowed_origins = csrf.parse_origins(settings.hub_allowed_origins)
    except ValueError as exc:
        raise SettingsError(f"invalid configuration: VW_HUB_ALLOWED_ORIGINS: {exc}") from exc

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        pool: ConnectionPool[Any] = ConnectionPool(
            conninfo, min_size=1, max_size=settings.hub_pool_size, open=False,
            name="vw-hub", kwargs={"application_name": "vward-hub"}, configure=_utc_session,
        )
        await asyncio.to_thread(pool.open, wait=True, timeout=30)
        app.state.pool = pool
        app.state.loop = asyncio.get_running_loop()
        if settings.demo_users:
            def _demo() -> None:
                with pool.connection() as conn:
                    if auth.ensure_demo_users(conn):
                        log.info("created the demo users nurse, doctor and admin (vward demo)")
            await asyncio.to_thread(_demo)
        tasks = [] if not listen else [
            asyncio.create_task(events.listen(conninfo, app.state.broadcaster),
                                name="vw-events-listener"),
            asyncio.create_task(_refresh_ward(app), name="vw-ward-refresh"),
        ]
        app.state.listener = tasks[0] if tasks else None
        # With or without LISTEN: a stream must end when its session does.
        tasks.append(asyncio.create_task(
            session_watch.watch(pool, app.state.broadcaster, app.state.clock),
            name="vw-session-watch"))
        try:
            yield
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await asyncio.to_thread(pool.close)

    app = FastAPI(
        title="virtualward hub", version="1",
        description="Ward API and live dashboard of the virtualward Hospital-at-Home platform.",
        # Swagger UI would load scripts from a CDN: only the OpenAPI document is served.
        openapi_url="/api/openapi.json", docs_url=None, redoc_url=None,
        lifespan=lifespan,
    )
    app.state.settings = settings
    app.state.clock = clock
    app.state.broadcaster = events.Broadcaster()
    app.state.listener = None
    app.state.ward_cache = wardcache.WardCache(
        enabled=lambda: listen and app.state.broadcaster.listening.is_set())
    app.state.broadcaster.add_hook(app.state.ward_cache.on_event)
    app.state.templates = templating.build(settings)
    problems.install(app)
    for module in (health, session, patients, admissions, devices, readings, observations,
                   alerts, care_plans, users, ward, risk, fhir_api, fhir_risk, reports_api, stream,
                   tasks, observation_tasks, worklist, pages, care_plan_pages, people_pages,
                   report_pages, manager_pages):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    # Outermost last: security headers on every answer, then the body limit before anything
    # reads a body, then the cross-site check before any route runs.
    app.add_middleware(csrf.OriginCheck, allowed=allowed_origins)
    app.add_middleware(limits.BodyLimit, limits=limits.hub_limits(settings.hub_max_body_bytes))
    app.add_middleware(SecurityHeaders)
    return app
