"""Hub test fixtures: the app on a fresh migrated schema, a settable clock, users by role, and
the hub served over real HTTP for the browser tests (`hub_server`)."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg
import pytest
import uvicorn
from fastapi.testclient import TestClient
from pydantic import SecretStr

from ward.db import registry
from ward.domain.patients import Admission, Pathway, Patient, ReferralSource
from ward.embedded import free_port
from ward.hub.app import create_app
from ward.hub.auth import Role, create_user
from ward.settings import Settings

T0 = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)
PASSWORD = "correct horse battery"


class Clock:
    """A settable clock: tests move time by assignment, never by sleeping."""

    def __init__(self, now: dt.datetime = T0) -> None:
        self.now = now

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += dt.timedelta(**kwargs)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def hub_settings(db_url: str, to_url: Callable[[str], str]) -> Settings:
    return Settings(database_url=SecretStr(to_url(db_url)), ward_beds=10)


@pytest.fixture
def app_client(hub_settings: Settings, clock: Clock) -> Iterator[TestClient]:
    app = create_app(hub_settings, clock=clock, listen=False)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield client


@contextlib.contextmanager
def _serve(settings: Settings, *, listen: bool, poll: Callable[..., None]) -> Iterator[str]:
    with serve_app(create_app(settings, listen=listen), poll) as url:
        yield url


@contextlib.contextmanager
def serve_app(app: Any, poll: Callable[..., None]) -> Iterator[str]:
    """Serve `app` (uvicorn, in a thread, on a free port) until the block ends; its URL.
    For a test that looks inside the app it serves (`hub_server` gives only the URL)."""
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(),
                                           log_level="warning", timeout_graceful_shutdown=1))
    thread = threading.Thread(target=server.run, name="hub", daemon=True)
    thread.start()
    poll(lambda: server.started, 20, "the hub to start")
    try:
        yield f"http://127.0.0.1:{server.config.port}"
    finally:
        # End open SSE streams first, as `vward hub` does on SIGINT: else uvicorn waits for
        # the browsers' streams until its graceful timeout, then cancels them.
        loop = getattr(app.state, "loop", None)
        if loop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(app.state.broadcaster.close)
        server.should_exit = True
        thread.join(10)


@pytest.fixture
def hub_server(db_url: str, to_url: Callable[[str], str], poll: Callable[..., None]
               ) -> Iterator[Callable[..., str]]:
    """`hub_server(settings=None, *, listen=True)`: the hub (uvicorn, in a thread, on a free
    port) over this test's schema; returns its base URL and stops it after the test.

    Default settings: this test's database, 10 beds. `listen=False` serves without LISTEN
    (no live updates, no ward cache), for pages that need none."""
    with contextlib.ExitStack() as stack:

        def start(settings: Settings | None = None, *, listen: bool = True) -> str:
            chosen = settings or Settings(database_url=SecretStr(to_url(db_url)), ward_beds=10)
            return stack.enter_context(_serve(chosen, listen=listen, poll=poll))

        yield start


@dataclass
class Staff:
    username: str
    role: Role
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@pytest.fixture
def staff(db: psycopg.Connection[Any], app_client: TestClient) -> Callable[[Role], Staff]:
    """Create a user of a role and log them in with a bearer token."""
    made: dict[Role, Staff] = {}

    def _make(role: Role) -> Staff:
        if role in made:
            return made[role]
        username = f"{role.value.replace('_', '')}1"
        create_user(db, username, PASSWORD, role=role, display_name=f"Test {role.value}")
        db.commit()
        response = app_client.post("/api/auth/token",
                                   json={"username": username, "password": PASSWORD})
        assert response.status_code == 200, response.text
        made[role] = Staff(username, role, response.json()["access_token"])
        return made[role]

    return _make


def admit_patient(conn: psycopg.Connection[Any], nhs_number: str, *,
                  at: dt.datetime = T0 - dt.timedelta(days=2),
                  given: str = "Ada", family: str = "Lovelace",
                  pathway: Pathway = Pathway.STEP_UP,
                  source: ReferralSource = ReferralSource.GP) -> int:
    patient = registry.add_patient(conn, Patient(nhs_number, given, family,
                                                 dt.date(1950, 1, 2)))
    assert patient.id is not None
    admission = Admission(patient.id, pathway, source, at - dt.timedelta(hours=1))
    registry.add_admission(conn, admission.admit(at))
    conn.commit()
    return patient.id


@pytest.fixture
def admit(db: psycopg.Connection[Any], nhs_number: Callable[[], str]) -> Callable[..., int]:
    """Register and admit a patient; returns the patient id."""

    def _admit(**kwargs: Any) -> int:
        return admit_patient(db, nhs_number(), **kwargs)

    return _admit
