"""Live events: NOTIFY vw_events reaches every subscriber (real PostgreSQL LISTEN)."""

from __future__ import annotations

import asyncio
import contextlib

import psycopg
import pytest

from ward.hub import events


@pytest.mark.parametrize(("payload", "expected"), [
    ('{"type": "readings", "patient_ids": [1, 2, 2]}', events.WardEvent("readings", (1, 2))),
    ('{"type": "alert", "patient_id": 7, "alert_id": 3, "state": "raised"}',
     events.WardEvent("alert", (7,), 3)),
    ('{"type": "score", "patient_id": true}', events.WardEvent("score", ())),
    ("not json", None),
    ('["type"]', None),
])
def test_parse(payload, expected):
    assert events.parse(payload) == expected


def test_notify_reaches_subscribers(db_url: str) -> None:
    async def scenario() -> events.WardEvent:
        hub = events.Broadcaster()
        listener = asyncio.create_task(events.listen(db_url, hub))
        try:
            with hub.subscribe() as queue:
                await asyncio.wait_for(hub.listening.wait(), 10)
                assert (await asyncio.wait_for(queue.get(), 5)).type == "resync"
                async with await psycopg.AsyncConnection.connect(db_url) as conn:
                    await conn.execute("SELECT vw_notify(%s)",
                                       ('{"type": "readings", "patient_ids": [42]}',))
                    await conn.commit()
                return await asyncio.wait_for(queue.get(), 5)
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    assert asyncio.run(scenario()) == events.WardEvent("readings", (42,))


def test_a_slow_subscriber_gets_a_resync_instead_of_a_backlog() -> None:
    async def scenario() -> list[events.WardEvent]:
        hub = events.Broadcaster()
        with hub.subscribe() as queue:
            for i in range(events.QUEUE_LIMIT + 5):
                hub.publish(events.WardEvent("readings", (i,)))
            return [queue.get_nowait() for _ in range(queue.qsize())]

    drained = asyncio.run(scenario())
    assert drained[0] == events.WardEvent("resync", ())
    assert len(drained) < events.QUEUE_LIMIT
