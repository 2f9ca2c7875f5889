"""An open live stream ends soon after its session does, over real HTTP (uvicorn, real
PostgreSQL): logged out from another client, password changed or user deactivated by an
admin, role changed, expired. The stream's last event is `session-ended` with the reason,
then the response ends; the ending is audited; other users' streams go on. (Checked: every
case fails on the old code, whose streams stayed open until the client left.)
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest

from tests.hub.conftest import PASSWORD, Clock, serve_app
from ward.hub.app import create_app
from ward.hub.auth import Role, create_user
from ward.settings import Settings

# Generous for a loaded 2-core machine; the watcher checks once a second.
DEADLINE_S = 10


class Stream:
    """`GET /api/events` read in a thread: the lines so far, and whether it has ended."""

    def __init__(self, base: str, **auth: Any) -> None:
        self.lines: list[str] = []
        self.opened = threading.Event()
        self.ended = threading.Event()
        self._thread = threading.Thread(target=self._read, args=(base, auth), daemon=True)
        self._thread.start()

    def _read(self, base: str, auth: dict[str, Any]) -> None:
        try:
            with httpx.Client(base_url=base, timeout=httpx.Timeout(5, read=60), **auth) as c, \
                    c.stream("GET", "/api/events") as response:
                if response.status_code != 200:
                    return
                for line in response.iter_lines():
                    self.lines.append(line)
                    self.opened.set()
        except httpx.HTTPError:
            pass
        finally:
            self.ended.set()

    @property
    def last_event(self) -> list[str]:
        """The last event's lines (the stream's text ends with a blank line)."""
        return [line for line in self.lines if line][-2:]


@pytest.fixture
def hub(hub_settings: Settings, poll: Callable[..., None]) -> Iterator[tuple[str, Clock, Any]]:
    """The hub over real HTTP with a settable clock (sessions expire by moving it)."""
    clock = Clock()
    app = create_app(hub_settings, clock=clock, listen=False)
    with serve_app(app, poll) as base:
        yield base, clock, app


def _token(base: str, username: str) -> str:
    response = httpx.post(base + "/api/auth/token",
                          json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def _cookie(base: str, username: str) -> str:
    response = httpx.post(base + "/login", data={"username": username, "password": PASSWORD},
                          headers={"Origin": base})
    assert response.status_code == 303, response.text
    return str(response.cookies["vw_session"])


def _logout_elsewhere(base: str, cookie: str, **_: Any) -> None:
    # Another client holding the same session (another tab, a second device) logs out.
    response = httpx.post(base + "/logout", cookies={"vw_session": cookie},
                          headers={"Origin": base})
    assert response.status_code == 303


def _admin_patch(body: dict[str, Any]) -> Callable[..., None]:
    def act(base: str, cookie: str, *, admin: str, user_id: int, **_: Any) -> None:
        response = httpx.patch(f"{base}/api/users/{user_id}", json=body,
                               headers={"Authorization": f"Bearer {admin}"})
        assert response.status_code == 200, response.text
    return act


def _expire(base: str, cookie: str, *, clock: Clock, **_: Any) -> None:
    clock.advance(hours=12, seconds=1)  # past VW_HUB_SESSION_TTL_S (12 h)


@pytest.mark.parametrize(("act", "reason"), [
    (_logout_elsewhere, "revoked"),
    (_admin_patch({"password": "a brand new password"}), "revoked"),
    (_admin_patch({"active": False}), "deactivated"),
    (_admin_patch({"role": "clinician"}), "role_changed"),
    (_expire, "expired"),
], ids=["logout-elsewhere", "password-changed", "deactivated", "role-changed", "expired"])
def test_an_open_stream_ends_with_the_reason_when_its_session_ends(
    db: psycopg.Connection[Any], hub: tuple[str, Clock, Any], poll: Callable[..., None],
    act: Callable[..., None], reason: str,
) -> None:
    base, clock, app = hub
    nurse = create_user(db, "nurse1", PASSWORD, role=Role.HUB_NURSE)
    create_user(db, "doctor1", PASSWORD, role=Role.CLINICIAN)
    create_user(db, "admin1", PASSWORD, role=Role.ADMIN)
    db.commit()
    cookie = _cookie(base, "nurse1")
    mine = Stream(base, cookies={"vw_session": cookie})
    # Someone else's stream, on a bearer token: it must go on.
    doctor = _token(base, "doctor1")
    theirs = Stream(base, headers={"Authorization": f"Bearer {doctor}"})
    admin = _token(base, "admin1")
    assert mine.opened.wait(DEADLINE_S)
    assert theirs.opened.wait(DEADLINE_S)
    if reason == "expired":
        # The others' sessions must outlive the move of the clock.
        db.execute("UPDATE hub_sessions SET expires_at = expires_at + interval '1 day' "
                   "WHERE user_id <> %s", (nurse.id,))
        db.commit()

    act(base, cookie, admin=admin, user_id=nurse.id, clock=clock)

    poll(mine.ended.is_set, DEADLINE_S, "the revoked session's stream to end")
    assert mine.last_event == ["event: session-ended", f'data: {{"reason": "{reason}"}}']
    # The same check read the doctor's session: their stream is still open.
    assert not theirs.ended.is_set()
    poll(lambda: app.state.broadcaster.subscribers == 1, DEADLINE_S, "the queue to go")
    rows = db.execute("SELECT user_id, detail->>'reason', (detail->>'streams')::int "
                      "FROM audit_log WHERE action = 'stream_ended'").fetchall()
    assert rows == [(nurse.id, reason, 1)]
    # And it cannot simply reconnect.
    again = httpx.get(base + "/api/events", cookies={"vw_session": cookie}, timeout=5)
    assert again.status_code == 401


def test_every_tab_of_the_session_ends_with_one_audit_row(
    db: psycopg.Connection[Any], hub: tuple[str, Clock, Any], poll: Callable[..., None],
) -> None:
    base, _, app = hub
    create_user(db, "nurse1", PASSWORD, role=Role.HUB_NURSE)
    db.commit()
    cookie = _cookie(base, "nurse1")
    tabs = [Stream(base, cookies={"vw_session": cookie}) for _ in range(3)]
    assert all(tab.opened.wait(DEADLINE_S) for tab in tabs)
    _logout_elsewhere(base, cookie)
    for tab in tabs:
        poll(tab.ended.is_set, DEADLINE_S, "every tab's stream to end")
        assert tab.last_event == ["event: session-ended", 'data: {"reason": "revoked"}']
    rows = db.execute("SELECT detail FROM audit_log WHERE action = 'stream_ended'").fetchall()
    assert rows == [({"reason": "revoked", "streams": 3},)]
    poll(lambda: app.state.broadcaster.subscribers == 0, DEADLINE_S, "the queues to go")
