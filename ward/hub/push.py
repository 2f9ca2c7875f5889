"""Changed ward rows pushed to the dashboard's stream, so a new reading reaches the screen
without the page's round trip (issue 14: publish → row on screen < 500 ms at 2,000 msgs/s).

Before, a `readings` event named the patients and every tab then fetched their rows
(`/ward/rows?patient_id=…`): one more request per tab and event, a 40 ms coalescing wait in
the page, and each tab rebuilding and rendering the same rows. Now a stream opened with
`/api/events?rows=1` (the ward page, static/hub.js) gets, instead of each `readings` event,
one event carrying that fragment itself (`rows_html`, plus `admitted`), rendered once per
batch by the same code as the fetch (`pages.rows_context`, `_ward_rows.html`) and shared
by every such stream. Every other event still reaches those streams as before (the page
fetches what it names), in the order the listener heard it.

One batch at a time (`Pusher.run`): every event that arrived meanwhile joins the next
batch, so under load batches grow instead of queueing, and the work per event (one
snapshot, one rendering, one audit statement) stays bounded by the build time. Rendering
rows as HTML is the cost (~1-3 ms a row): a batch expected to take longer than `BUDGET_MS`
is sent as the plain event and fetched, as before the push (see there).

Audit: a pushed row is a read of the patient's record, as its fetch was. Each batch writes,
in one statement and before anything is sent, one `audit_log` row per receiving stream
(its user, action "read", entity "ward", `detail.pushed`, the stream's number) naming every
patient in the batch (`audit.record_many`). A stream whose session has since expired or been
revoked is sent the plain event instead (its fetch then meets the login); so is a stream that
opened after the batch's audit was written. If building or auditing fails, every stream gets
the plain events and fetches as before: a push is an optimisation, never the only path.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from typing import Any

from ward.hub import audit, auth, events
from ward.hub.events import Subscriber, WardEvent
from ward.hub.routers import pages

log = logging.getLogger(__name__)

# The event whose rows are pushed: new readings (its rows come from the ward cache's cheap
# rebuild, wardcache.refresh_latest). Alert, score, admission, … events keep the fetch.
PUSHED = "readings"
# Events waiting for the pusher before it gives up on them and tells the row streams to
# resync (a pusher stalled on a dead database must not hold memory without bound).
INTAKE_LIMIT = 4096
# Patients in one pushed batch at most (the fetch's limit, `/ward/rows`' max_length); a
# larger batch is sent as the plain event and fetched.
MAX_ROWS = 500
# Rendering is the cost: a row of HTML took 1-3 ms of Jinja here (100 rows 250-400 ms at load
# 12, /tmp timing of `pages.rows_context` + render, 2026-12-02), and `bench_latency` at 2,000
# msgs/s over 1,000 patients with every batch pushed gave p99 20 s (10 batches in 20 s). A
# batch whose rows are expected (`row_ms`, learnt from the builds so far) to take longer than
# this is sent as the plain event instead, so the page fetches it as it did before the push:
# never slower than that, and while the plain events flow every row stream sees them at once.
BUDGET_MS = 150.0
# The first estimate of one row's build (before any build was timed), ms.
FIRST_ROW_MS = 1.0


class Pusher:
    """Builds, audits and sends the pushed rows of one hub process (`app.state.pusher`)."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._intake: asyncio.Queue[WardEvent] = asyncio.Queue()
        self.batches = 0  # batches pushed (for tests and figures)
        self.fallbacks = 0  # batches sent as plain events instead
        # One row's rows_context + rendering, ms (moving average over the builds; the
        # batch's fixed cost, its few queries, is left out so small batches do not inflate it).
        self.row_ms = FIRST_ROW_MS

    def feed(self, event: WardEvent) -> None:
        """Broadcaster sink: every event, in order, for the streams that take rows."""
        if self._intake.qsize() >= INTAKE_LIMIT:
            while not self._intake.empty():
                self._intake.get_nowait()
            event = WardEvent("resync", ())
        self._intake.put_nowait(event)

    async def run(self) -> None:
        while True:
            batch = [await self._intake.get()]
            while not self._intake.empty():
                batch.append(self._intake.get_nowait())
            try:
                await self._send(batch)
            except Exception:  # keep pushing; the streams' next resync repairs the screen
                log.exception("pushing ward rows failed")

    async def _send(self, batch: list[WardEvent]) -> None:
        broadcaster: events.Broadcaster = self._app.state.broadcaster
        ids = tuple(dict.fromkeys(p for e in batch if e.type == PUSHED for p in e.patient_ids))
        others = [e for e in batch if e.type != PUSHED]
        plain = WardEvent(PUSHED, ids)
        pushed: WardEvent | None = None
        audited: set[Subscriber] = set()
        subs = broadcaster.row_subscribers()
        resync = any(e.type == "resync" for e in others)
        if (ids and subs and not resync and len(ids) <= MAX_ROWS
                and len(ids) * self.row_ms <= BUDGET_MS):
            try:
                pushed, audited = await asyncio.to_thread(self._build, list(ids), subs)
            except Exception:
                log.exception("building pushed ward rows failed; the pages fetch them")
        if pushed is None and ids:
            self.fallbacks += 1
        elif pushed is not None:
            self.batches += 1
        # Other events first: the pushed rows were read after all of them, so they are the
        # newest; the page never lets a push overtake a fetch it already started (hub.js).
        for sub in broadcaster.row_subscribers():
            for event in others:
                sub.put(event)
            if ids:
                sub.put(pushed if pushed is not None and sub in audited else plain)

    def _build(self, ids: list[int], subs: list[Subscriber]
               ) -> tuple[WardEvent | None, set[Subscriber]]:
        """The batch's rows fragment, rendered once, and its audit rows, committed (runs in
        a worker thread: psycopg and Jinja are blocking)."""
        app = self._app
        with app.state.pool.connection() as conn:
            now = app.state.clock()
            live = auth.live_digests(conn, [s.token_digest for s in subs if s.token_digest],
                                     now=now)
            allowed = [s for s in subs if s.token_digest is not None and s.token_digest in live]
            if not allowed:
                return None, set()
            started = time.perf_counter()
            view, context = pages.rows_context(app.state.ward_cache, conn, now,
                                               app.state.settings, ids)
            html = app.state.templates.get_template(pages.ROWS_TEMPLATE).render(context)
            took = (time.perf_counter() - started) * 1000 / max(len(ids), 1)
            self.row_ms = 0.7 * self.row_ms + 0.3 * took
            audit.record_many(
                conn, [(s.user_id, s.actor, {"subset": True, "pushed": True, "stream": s.number})
                       for s in allowed],
                "read", "ward", now=now, patient_ids=[r.patient_id for r in view.rows])
        event = WardEvent(PUSHED, tuple(ids), rows_html=html, admitted=view.admitted)
        return dataclasses.replace(event, message=events.sse_message(event)), set(allowed)
