"""The live stream: Server-Sent Events telling open pages which patients changed.

A stream is admitted like any request (`Reader`) and subscribed with the session it came
with, so the session watcher can end it once that session no longer admits its holder.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from ward.hub import auth, events
from ward.hub.deps import token_from
from ward.hub.routers.common import Reader
from ward.hub.session_end import StreamOwner

router = APIRouter(tags=["live"])


@router.get("/api/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}})
async def event_stream(request: Request, user: Reader) -> StreamingResponse:
    """`event: ward` messages with `{"type", "patient_ids"}`; fetch those rows to update.

    A last `event: session-ended` with `{"reason"}` (`deactivated`, `role_changed`,
    `revoked`, `expired`) comes within about a second of the session ending; then it closes."""
    broadcaster: events.Broadcaster = request.app.state.broadcaster
    # Reader admitted the request, so it carried a token.
    owner = StreamOwner(auth.token_digest(token_from(request) or ""), user.id, user.username,
                        user.role.value)
    return StreamingResponse(
        events.stream(broadcaster, request.is_disconnected, owner),
        media_type="text/event-stream",
        # no-transform: proxies must not buffer or compress the stream.
        headers={"Cache-Control": "no-store, no-transform", "X-Accel-Buffering": "no"},
    )
