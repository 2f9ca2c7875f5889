"""Live updates: one `LISTEN vw_events` per hub process, fanned out to browsers over SSE.

The gateway and the alerting runner `NOTIFY vw_events` inside their writing transactions, so
an event arrives only once its data is committed. One async psycopg connection per process
listens; each open browser tab holds a small queue here. Nothing polls: a tab is told which
patients changed and fetches just those rows. A tab too slow to drain its queue gets a
`resync` event (reload the whole list) instead of an ever-growing backlog.

Each stream is subscribed with the session it was admitted with (`session_end.StreamOwner`);
the session watcher (`ward.hub.session_watch`) ends the streams of sessions that stop
admitting their holder (`Broadcaster.end_sessions`): such a stream sends a last
`event: session-ended` with the reason and closes.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import psycopg

from ward.db import channels
from ward.hub.session_end import StreamOwner

log = logging.getLogger(__name__)

# The base name; the channel listened on is per schema (ward.db.channels, migration 0150).
CHANNEL = channels.EVENTS
# Events a tab may lag behind before it is told to resync: a burst of gateway batches for a
# few hundred patients fits; a tab asleep in the background does not grow without bound.
QUEUE_LIMIT = 256
# An SSE comment this often keeps proxies from closing an idle stream (most time out at 60 s).
KEEPALIVE_S = 15.0
# Reconnect back-off after the database connection drops: quick first, capped at 10 s.
RETRY_FIRST_S, RETRY_MAX_S = 0.5, 10.0
# Internal event that ends a stream when the server shuts down (never sent to browsers).
CLOSING = "closing"


@dataclass(frozen=True, slots=True)
class WardEvent:
    """What changed: the kind of event and the patients it touches."""

    type: str
    patient_ids: tuple[int, ...]
    alert_id: int | None = None


@dataclass(frozen=True, slots=True)
class SessionEnded:
    """The stream's session no longer admits its holder: say why, then end the stream."""

    reason: str


Item = WardEvent | SessionEnded


def parse(payload: str) -> WardEvent | None:
    """A `vw_events` payload as a WardEvent; None for anything malformed (logged, ignored)."""
    try:
        data = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        return None
    ids: list[int] = []
    raw_ids = data.get("patient_ids")
    if isinstance(raw_ids, list):
        ids.extend(int(i) for i in raw_ids if isinstance(i, int) and not isinstance(i, bool))
    single = data.get("patient_id")
    if isinstance(single, int) and not isinstance(single, bool):
        ids.append(single)
    alert = data.get("alert_id")
    return WardEvent(
        str(data["type"]), tuple(dict.fromkeys(ids)),
        alert if isinstance(alert, int) and not isinstance(alert, bool) else None,
    )


class Broadcaster:
    """Fan-out of ward events to subscribers (one per open SSE stream)."""

    def __init__(self) -> None:
        # Each open stream's queue and the session it was admitted with (None: unowned, for
        # callers inside the hub such as tests of the fan-out).
        self._queues: dict[asyncio.Queue[Item], StreamOwner | None] = {}
        self._hooks: list[Callable[[WardEvent], None]] = []
        self.listening = asyncio.Event()

    def add_hook(self, hook: Callable[[WardEvent], None]) -> None:
        """Call `hook` with every event before any stream sees it (the ward cache's
        invalidation: a tab told about a change must never fetch the row from before it)."""
        self._hooks.append(hook)

    @property
    def subscribers(self) -> int:
        return len(self._queues)

    def publish(self, event: WardEvent) -> None:
        for hook in self._hooks:
            hook(event)
        for queue in list(self._queues):
            try:
                queue.put_nowait(event)
            except asyncio.QueueFull:
                while not queue.empty():
                    queue.get_nowait()
                queue.put_nowait(WardEvent("resync", ()))

    def owners(self) -> Counter[StreamOwner]:
        """The sessions (and roles) that hold an open stream now, with how many each."""
        return Counter(owner for owner in self._queues.values() if owner is not None)

    def end_sessions(self, endings: Mapping[StreamOwner, str]) -> int:
        """End every open stream of these owners: its backlog is dropped, it sends
        `session-ended` with the owner's reason and closes. How many streams were ended."""
        ended = 0
        for queue, owner in list(self._queues.items()):
            if owner is None or owner not in endings:
                continue
            # Out of the fan-out first, so no later event (nor a resync) can displace the end.
            del self._queues[queue]
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(SessionEnded(endings[owner]))
            ended += 1
        return ended

    def close(self) -> None:
        """The server is stopping: end every open stream now (browsers will reconnect)."""
        for queue in list(self._queues):
            while not queue.empty():
                queue.get_nowait()
            queue.put_nowait(WardEvent(CLOSING, ()))

    @contextlib.contextmanager
    def subscribe(self, owner: StreamOwner | None = None) -> Any:
        queue: asyncio.Queue[Item] = asyncio.Queue(QUEUE_LIMIT)
        self._queues[queue] = owner
        try:
            yield queue
        finally:
            self._queues.pop(queue, None)


async def listen(conninfo: str, broadcaster: Broadcaster) -> None:
    """Forward every `vw_events` notification to `broadcaster` until cancelled.

    `broadcaster.listening` is set only while the LISTEN connection is up: the ward cache
    trusts its rows only then (a notification missed while it was down cannot be replayed).
    """
    delay = RETRY_FIRST_S
    while True:
        try:
            async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
                await channels.listen_async(conn, CHANNEL)
                broadcaster.listening.set()
                delay = RETRY_FIRST_S
                # After a reconnect anything may have been missed: tell every tab to resync.
                broadcaster.publish(WardEvent("resync", ()))
                async for note in conn.notifies():
                    event = parse(note.payload)
                    if event is None:
                        log.warning("ignored a malformed %s payload", CHANNEL)
                        continue
                    broadcaster.publish(event)
        except psycopg.Error as exc:
            log.warning("event listener lost the database (%s); retrying in %.1fs",
                        type(exc).__name__, delay)
        finally:
            broadcaster.listening.clear()
        await asyncio.sleep(delay)
        delay = min(delay * 2, RETRY_MAX_S)


def sse_message(event: WardEvent) -> str:
    data: dict[str, object] = {"type": event.type, "patient_ids": list(event.patient_ids)}
    if event.alert_id is not None:
        data["alert_id"] = event.alert_id
    return f"event: ward\ndata: {json.dumps(data)}\n\n"


def sse_session_ended(ended: SessionEnded) -> str:
    return f"event: session-ended\ndata: {json.dumps({'reason': ended.reason})}\n\n"


async def stream(broadcaster: Broadcaster, disconnected: Any,
                 owner: StreamOwner | None = None) -> AsyncIterator[str]:
    """SSE text for one subscriber until the client goes away, the server stops or the
    `owner`'s session ends."""
    with broadcaster.subscribe(owner) as queue:
        yield "retry: 2000\n: connected\n\n"
        while True:
            try:
                # Not wait_for: that wraps each get in a new Task (per event, per tab).
                event = queue.get_nowait() if not queue.empty() else None
                if event is None:
                    async with asyncio.timeout(KEEPALIVE_S):
                        event = await queue.get()
            except TimeoutError:
                if await disconnected():
                    return
                yield ": keep-alive\n\n"
                continue
            if isinstance(event, SessionEnded):
                yield sse_session_ended(event)
                return
            if event.type == CLOSING:
                return
            yield sse_message(event)
