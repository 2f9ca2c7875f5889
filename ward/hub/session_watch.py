"""Ends open live streams whose session has ended: the thin loop around `session_end`.

Every request checks its session, but a live stream (`/api/events`) is checked only when it
opens, and it can stay open for a whole shift. Once a second this loop reads the state of
every session holding an open stream in one query (`auth.session_states`), asks
`session_end.stream_endings` which must end, and tells the broadcaster to end them; each
ending is audited (`stream_ended`, with the reason). Nothing is queried while no stream is
open.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable, Collection, Mapping
from typing import Any

from psycopg_pool import ConnectionPool

from ward.hub import audit, auth, events, session_end
from ward.hub.session_end import Reason, StreamOwner

log = logging.getLogger(__name__)

# How often the sessions of open streams are checked: a revoked session's stream ends within
# about this long. One indexed query for all of them (200 sessions: see
# benchmarks/bench_session_check.py) costs a few milliseconds a second.
CHECK_EVERY_S = 1.0


def _states(pool: ConnectionPool[Any], hashes: Collection[bytes]
            ) -> dict[bytes, session_end.SessionState]:
    with pool.connection() as conn:
        return auth.session_states(conn, hashes)


def _audit(pool: ConnectionPool[Any], endings: Mapping[StreamOwner, Reason],
           counts: Mapping[StreamOwner, int], now: dt.datetime) -> None:
    with pool.connection() as conn:
        for owner, reason in endings.items():
            user = auth.User(owner.user_id, owner.username, owner.username, auth.Role(owner.role))
            audit.record(conn, user, "stream_ended", "session", now=now,
                         detail={"reason": reason.value, "streams": counts.get(owner, 0)})


async def check_once(pool: ConnectionPool[Any], broadcaster: events.Broadcaster,
                     clock: Callable[[], dt.datetime]) -> dict[StreamOwner, Reason]:
    """One check: end (and audit) the streams whose session has ended; what was ended."""
    owners = broadcaster.owners()
    if not owners:
        return {}
    states = await asyncio.to_thread(_states, pool, {o.token_hash for o in owners})
    now = clock()
    endings = session_end.stream_endings(owners, states, now=now)
    if not endings:
        return endings
    # End first (in the loop, at once); the audit follows, and its failure ends nothing less.
    counts = broadcaster.end_sessions(endings)
    for owner, reason in endings.items():
        log.info("ended %d live stream(s) of user %s: %s", counts[owner], owner.username,
                 reason.value)
    await asyncio.to_thread(_audit, pool, endings, counts, now)
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
