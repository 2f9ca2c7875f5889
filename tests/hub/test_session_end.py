"""The one rule for when a session stops admitting its holder (`ward.hub.session_end`): what a
request is told and which open live streams end, and why. Pure: instants are passed in."""

from __future__ import annotations

import datetime as dt

import pytest

from ward.hub.session_end import Reason, SessionState, StreamOwner, refusal, stream_endings

NOW = dt.datetime(2026, 12, 6, 21, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(hours=1)
OWNER = StreamOwner(b"h1", 7, "nurse", "hub_nurse")


def state(*, expires: dt.datetime = LATER, revoked: dt.datetime | None = None,
          active: bool = True, role: str = "hub_nurse") -> SessionState:
    return SessionState(expires, revoked, active, role)


@pytest.mark.parametrize(("session", "request_told", "stream_told"), [
    (state(), None, None),
    (None, Reason.REVOKED, Reason.REVOKED),
    (state(revoked=NOW), Reason.REVOKED, Reason.REVOKED),
    # Expiry is absolute and exclusive: at `expires_at` the session has ended.
    (state(expires=NOW), Reason.EXPIRED, Reason.EXPIRED),
    (state(expires=NOW + dt.timedelta(microseconds=1)), None, None),
    (state(active=False), Reason.DEACTIVATED, Reason.DEACTIVATED),
    # Deactivating revokes the sessions too; it is the more useful thing to say.
    (state(active=False, revoked=NOW, expires=NOW), Reason.DEACTIVATED, Reason.DEACTIVATED),
    # A request is authorised by the role it has now; a stream ends once it is not the role
    # it was opened under (the people screen revokes as well: the role is what is said).
    (state(role="clinician"), None, Reason.ROLE_CHANGED),
    (state(role="clinician", revoked=NOW), Reason.REVOKED, Reason.ROLE_CHANGED),
    (state(role="clinician", expires=NOW), Reason.EXPIRED, Reason.ROLE_CHANGED),
    (state(role="clinician", active=False), Reason.DEACTIVATED, Reason.DEACTIVATED),
])
def test_a_request_and_a_stream_are_told_the_same_unless_the_role_changed(
        session: SessionState | None, request_told: Reason | None,
        stream_told: Reason | None) -> None:
    assert refusal(session, now=NOW) is request_told
    assert stream_endings([OWNER], {} if session is None else {b"h1": session},
                          now=NOW) == ({} if stream_told is None else {OWNER: stream_told})


def test_only_the_owners_whose_session_ended_are_named() -> None:
    other = StreamOwner(b"h2", 8, "doctor", "clinician")
    gone = StreamOwner(b"h3", 9, "admin", "admin")
    states = {b"h1": state(revoked=NOW), b"h2": state(role="clinician")}
    assert stream_endings([OWNER, other, gone], states, now=NOW) == {
        OWNER: Reason.REVOKED, gone: Reason.REVOKED}


def test_the_log_in_page_explains_every_reason() -> None:
    from ward.hub.routers.session import ENDED_MESSAGES

    assert set(ENDED_MESSAGES) == set(Reason)
    assert all(m.startswith("You were signed out: ") for m in ENDED_MESSAGES.values())
