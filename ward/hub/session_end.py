"""When a session stops admitting its holder, and why: one rule for requests and open streams.

A request is admitted only while its session (cookie or bearer token, `hub_sessions`) is
unrevoked and unexpired and its user active (`auth.user_for_token` asks `refusal` below). An
open live stream (`/api/events`) was admitted once, when it opened; the session watcher
(`ward.hub.session_watch`) asks `stream_endings` once a second with the sessions' current
states, so a stream ends as soon as a request with its session would be refused — or as soon
as its user's role is no longer the one it opened under (the page it feeds was drawn for the
old role). Sessions have an absolute expiry only (`expires_at`, set at log-in from
`VW_HUB_SESSION_TTL_S` / `VW_HUB_TOKEN_TTL_S`); there is no idle expiry.

Pure: no database, no clock of its own (`now` is passed), no logging. Roles are plain strings
here (`auth.Role` values) so this module imports nothing that does I/O.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass


class Reason(enum.StrEnum):
    """Why a stream ended; the value is what the browser is told (`/login?ended=<value>`)."""

    # The user was deactivated (sessions revoked with it; checked first: it says the most).
    DEACTIVATED = "deactivated"
    # The user's role changed since the stream opened (an admin changing a role also revokes
    # the user's sessions, but "your role changed" is the more useful thing to say).
    ROLE_CHANGED = "role_changed"
    # Logged out (this tab or another), the password changed, or the session is gone.
    REVOKED = "revoked"
    # Past `expires_at`.
    EXPIRED = "expired"


@dataclass(frozen=True, slots=True)
class SessionState:
    """What `hub_sessions` and `users` say about one session now."""

    expires_at: dt.datetime
    revoked_at: dt.datetime | None
    active: bool
    role: str


@dataclass(frozen=True, slots=True)
class StreamOwner:
    """The session an open stream was admitted with, and the role it was admitted as."""

    token_hash: bytes
    user_id: int
    username: str
    role: str


def refusal(state: SessionState | None, *, now: dt.datetime) -> Reason | None:
    """Why a request with this session is refused now, or None when it is admitted.

    `state` None: no such session (never issued, or deleted), which is refused as revoked."""
    if state is None:
        return Reason.REVOKED
    if not state.active:
        return Reason.DEACTIVATED
    if state.revoked_at is not None:
        return Reason.REVOKED
    if state.expires_at <= now:
        return Reason.EXPIRED
    return None


def stream_ending(owner: StreamOwner, state: SessionState | None, *, now: dt.datetime
                  ) -> Reason | None:
    """Why the stream `owner` opened must end now, or None while it may go on."""
    reason = refusal(state, now=now)
    if reason is Reason.DEACTIVATED or state is None:
        return reason
    if state.role != owner.role:
        return Reason.ROLE_CHANGED
    return reason


def stream_endings(owners: Iterable[StreamOwner], states: Mapping[bytes, SessionState], *,
                   now: dt.datetime) -> dict[StreamOwner, Reason]:
    """Every owner whose streams must end now, with the reason (`states` keyed by token
    hash; a hash missing from it is a session that no longer exists)."""
    endings: dict[StreamOwner, Reason] = {}
    for owner in owners:
        reason = stream_ending(owner, states.get(owner.token_hash), now=now)
        if reason is not None:
            endings[owner] = reason
    return endings
