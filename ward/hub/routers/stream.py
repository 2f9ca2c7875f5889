"""The live stream: Server-Sent Events telling open pages which patients changed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ward.hub import auth, events
from ward.hub.deps import token_from
from ward.hub.routers.common import Reader

router = APIRouter(tags=["live"])


@router.get("/api/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def event_stream(request: Request, user: Reader, rows: bool = False) -> StreamingResponse:
    """`event: ward` messages with `{"type", "patient_ids"}`; fetch those rows to update.

    `rows=1`: `readings` events carry the changed rows themselves (`rows_html`, the
    `/ward/rows?patient_id=…` fragment, and `admitted`), audited as a read of those patients
    by this user (`ward.hub.push`); when one comes without `rows_html`, fetch as before."""
    broadcaster: events.Broadcaster = request.app.state.broadcaster
    token = token_from(request)
    return StreamingResponse(
        events.stream(broadcaster, request.is_disconnected, rows=rows, user_id=user.id,
                      actor=user.username,
                      token_digest=auth.token_digest(token) if token else None),
        media_type="text/event-stream",
        # no-transform: proxies must not buffer or compress the stream.
        headers={"Cache-Control": "no-store, no-transform", "X-Accel-Buffering": "no"},
    )
