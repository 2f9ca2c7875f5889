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


def test_a_quiet_stream_keeps_alive_then_ends_when_the_client_goes(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """An idle stream sends a keep-alive comment each KEEPALIVE_S, still delivers events,
    and ends at the first keep-alive after the client went away."""
    ev = events
    monkeypatch.setattr(ev, "KEEPALIVE_S", 0.05)

    async def scenario() -> list[str]:
        broadcaster = ev.Broadcaster()
        gone = False

        async def disconnected() -> bool:
            return gone

        out: list[str] = []
        async for text in ev.stream(broadcaster, disconnected):
            out.append(text)
            if text.startswith(": keep-alive") and len(out) == 2:
                broadcaster.publish(ev.WardEvent("readings", (7,)))
            elif text.startswith("event: ward"):
                gone = True
        return out

    out = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert out[0].startswith("retry: 2000")
    assert out[1] == ": keep-alive\n\n"
    assert out[2] == 'event: ward\ndata: {"type": "readings", "patient_ids": [7]}\n\n'
    assert len(out) == 3


def test_ending_a_session_ends_only_its_streams_with_the_reason_and_no_backlog() -> None:
    """`end_sessions` drops the stream's backlog, sends `session-ended` and closes it; later
    events no longer reach it; another session's stream still gets them."""
    from ward.hub.session_end import StreamOwner

    ended_owner = StreamOwner(b"a", 1, "nurse", "hub_nurse")
    other_owner = StreamOwner(b"b", 2, "doctor", "clinician")

    async def scenario() -> tuple[list[str], list[str], int]:
        hub = events.Broadcaster()

        async def connected() -> bool:
            return False

        ended = events.stream(hub, connected, ended_owner)
        other = events.stream(hub, connected, other_owner)
        first = [await anext(ended)]
        second = [await anext(other)]
        assert hub.owners() == {ended_owner: 1, other_owner: 1}
        hub.publish(events.WardEvent("readings", (1,)))
        count = hub.end_sessions({ended_owner: "revoked"})
        hub.publish(events.WardEvent("readings", (2,)))
        first.extend([text async for text in ended])
        second.append(await anext(other))
        second.append(await anext(other))
        await other.aclose()
        return first, second, count + hub.subscribers

    first, second, left = asyncio.run(asyncio.wait_for(scenario(), 10))
    assert first[1:] == ['event: session-ended\ndata: {"reason": "revoked"}\n\n']
    assert [s.split("\n")[1] for s in second[1:]] == [
        'data: {"type": "readings", "patient_ids": [1]}',
        'data: {"type": "readings", "patient_ids": [2]}']
    assert left == 1  # one stream ended, none left subscribed
