"""Dead letters into the batch's transaction, rationed per device (`gateway.dead_letters`).

Thin SQL: lock the accounts of the devices in the batch (`FOR UPDATE`, so gateways sharing
the load keep one count), let the pure `ration` decide, then write the kept dead letters, the
accounts and any quarantine (a `device_quarantines` row and a `device_alert` NOTIFY). Also the
retention that `vward maintain` runs.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Sequence
from typing import Any

import psycopg

from gateway.dead_letters import Budget, Ration, Rationing, device_key, ration
from gateway.pipeline import DeadLetter

log = logging.getLogger(__name__)

_ENSURE = ("INSERT INTO dead_letter_budget (device_id, window_start) "
           "SELECT unnest(%s::text[]), now() ON CONFLICT (device_id) DO NOTHING")
_LOCK = ("SELECT device_id, window_start, messages, payload_bytes, quarantined_until, "
         "suppressed, suppressed_bytes, now() FROM dead_letter_budget "
         "WHERE device_id = ANY(%s) ORDER BY device_id FOR UPDATE")
_STORE = ("UPDATE dead_letter_budget SET window_start = %s, messages = %s, payload_bytes = %s, "
          "quarantined_until = %s, suppressed = %s, suppressed_bytes = %s WHERE device_id = %s")
_INSERT = (
    "INSERT INTO rejected_messages (received_at, topic, device_id, msg_id, reason, detail, "
    "payload, payload_sha256, payload_bytes, payload_dropped) "
    "VALUES (now(), %s, %s, %s, %s, %s, %s, %s, %s, %s) "
    "ON CONFLICT (topic, payload_sha256) DO NOTHING"
)
_QUARANTINE = ("INSERT INTO device_quarantines (device_id, started_at, until, reason, detail) "
               "VALUES (%s, %s, %s, 'dead_letter_flood', %s)")
_RETAIN = (
    "DELETE FROM rejected_messages WHERE received_at < now() - %s::interval",
    "DELETE FROM device_quarantines WHERE until < now() - %s::interval",
    "DELETE FROM dead_letter_budget WHERE window_start < now() - %s::interval "
    "AND (quarantined_until IS NULL OR quarantined_until < now())",
)


def write(cur: psycopg.Cursor[Any], letters: Sequence[DeadLetter],
          limits: Rationing) -> Ration | None:
    """Store `letters` as rationed (caller's transaction); None when there were none."""
    if not letters:
        return None
    keys = sorted({device_key(d) for d in letters})
    cur.execute(_ENSURE, (keys,))
    rows = cur.execute(_LOCK, (keys,)).fetchall()
    now: dt.datetime = rows[0][7]
    budgets = {str(r[0]): Budget(str(r[0]), r[1], int(r[2]), int(r[3]), r[4], int(r[5]),
                                 int(r[6])) for r in rows}
    decided = ration(letters, budgets, now, limits)
    if decided.kept:
        cur.executemany(_INSERT, [
            (k.letter.topic, k.letter.device_id, k.letter.msg_id, k.letter.reason.value,
             k.letter.detail, k.payload, hashlib.sha256(k.letter.payload).digest(),
             len(k.letter.payload), k.dropped)
            for k in decided.kept])
    cur.executemany(_STORE, [
        (b.window_start, b.messages, b.payload_bytes, b.quarantined_until, b.suppressed,
         b.suppressed_bytes, b.device_id) for b in decided.budgets])
    for q in decided.quarantines:
        cur.execute(_QUARANTINE, (q.device_id, q.started_at, q.until, q.detail))
        cur.execute("SELECT vw_notify(%s)", (json.dumps({
            "type": "device_alert", "device_id": q.device_id, "alert": "quarantined",
            "until": q.until.isoformat()}),))
        log.warning("device quarantined device=%s until=%s reason=dead_letter_flood %s",
                    q.device_id, q.until.isoformat(), q.detail)
    return decided


def apply_retention(conn: psycopg.Connection[Any], keep: dt.timedelta) -> tuple[int, int, int]:
    """Delete dead letters, quarantine records and idle accounts older than `keep`."""
    counts = []
    with conn.transaction(), conn.cursor() as cur:
        for statement in _RETAIN:
            cur.execute(statement, (keep,))
            counts.append(cur.rowcount)
    return counts[0], counts[1], counts[2]
