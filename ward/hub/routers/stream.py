"""The live stream: Server-Sent Events telling open pages which patients changed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ward.hub import events
from ward.hub.routers.common import Reader

router = APIRouter(tags=["live"])


@router.get("/api/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def event_stream(request: Request, user: Reader) -> StreamingResponse:
    """`event: ward` messages with `{"type", "patient_ids"}`; fetch those rows to update."""
    broadcaster: events.Broadcaster = request.app.state.broadcaster
    return StreamingResponse(
        events.stream(broadcaster, request.is_disconnected),
        media_type="text/event-stream",
        # no-transform: proxies must not buffer or compress the stream.
        headers={"Cache-Control": "no-store, no-transform", "X-Accel-Buffering": "no"},
    )
