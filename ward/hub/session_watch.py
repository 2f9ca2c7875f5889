"""Ends open live streams whose session has ended: the thin loop around `session_end`.

Every request checks its session, but a live stream (`/api/events`) is checked only when it
opens, and it can stay open for a whole shift. Once a second this loop reads the state of
every session holding an open stream in one query (`auth.session_states`), asks
`session_end.stream_endings` which must end, audits each ending (`stream_ended`, with the
reason and how many streams) and tells the broadcaster to end those streams. Nothing is
queried while no stream is open.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections import Counter
from collections.abc import Callable
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool

from ward.hub import audit, auth, events, session_end
from ward.hub.session_end import Reason, StreamOwner

log = logging.getLogger(__name__)

# How often the sessions of open streams are checked: a stream outlives its session by at
# most about this long (measured logout → closed: p50 346 ms, max 990 ms). The whole check
# for 200 open streams costs ~2 ms, 6 ms for 1,000 (benchmarks/bench_session_check.py, load
# average 2.9 on 2 cores), so once a second is cheap.
CHECK_EVERY_S = 1.0


def _decide(pool: ConnectionPool[Any], owners: Counter[StreamOwner],
            clock: Callable[[], dt.datetime]) -> dict[StreamOwner, Reason]:
    """Read the sessions' states, decide, and audit the endings (in the pool's thread)."""
    with pool.connection() as conn:
        states = auth.session_states(conn, {o.token_hash for o in owners})
        now = clock()
        endings = session_end.stream_endings(owners, states, now=now)
        if not endings:
            return endings
        try:
            with conn.transaction():
                for owner, reason in endings.items():
                    user = auth.User(owner.user_id, owner.username, owner.username,
                                     auth.Role(owner.role))
                    audit.record(conn, user, "stream_ended", "session", now=now,
                                 detail={"reason": reason.value, "streams": owners[owner]})
        except psycopg.Error:  # the streams end all the same
            log.exception("could not audit the end of %d live stream(s)", len(endings))
    return endings


async def check_once(pool: ConnectionPool[Any], broadcaster: events.Broadcaster,
                     clock: Callable[[], dt.datetime]) -> dict[StreamOwner, Reason]:
    """One check: end (audited) the streams whose session has ended; what was ended."""
    owners = broadcaster.owners()
    if not owners:
        return {}
    endings = await asyncio.to_thread(_decide, pool, owners, clock)
    if endings:
        broadcaster.end_sessions(endings)
        for owner, reason in endings.items():
            log.info("ended %d live stream(s) of %s: %s", owners[owner], owner.username,
                     reason.value)
    return endings


async def watch(pool: ConnectionPool[Any], broadcaster: events.Broadcaster,
                clock: Callable[[], dt.datetime], *, every_s: float = CHECK_EVERY_S) -> None:
    """Check every `every_s` until cancelled; a failed check is logged and retried."""
    while True:
        await asyncio.sleep(every_s)
        try:
            await check_once(pool, broadcaster, clock)
        except Exception:  # the database may be away; the next check tries again
            log.exception("checking the sessions of open live streams failed")
