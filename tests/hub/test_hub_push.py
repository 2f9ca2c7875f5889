"""Rows pushed on the ward page's stream (`/api/events?rows=1`, `ward.hub.push`): a `readings`
event carries the rows fragment itself, byte for byte what `/ward/rows?patient_id=…` returns
for the same patients at the same instant (stale and partial values marked as the fetch marks
them), and each stream it reaches is audited as a read of those patients, committed before
it is sent; a revoked session's stream and a plain stream get only the patients' ids.

Real PostgreSQL and LISTEN, the hub served over HTTP (uvicorn in a thread) with a fixed
clock, SSE read by an HTTP client as a browser's EventSource reads it. On the code before the
push (ids only, the page fetching) every test here fails: no event carries `rows_html`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import psycopg
import pytest
from pydantic import SecretStr

from tests.hub.conftest import PASSWORD, Clock, serve_app
from ward.hub.app import create_app
from ward.hub.auth import Role, create_user
from ward.settings import Settings

Conn = psycopg.Connection[Any]
T0 = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)
NOW = T0 + dt.timedelta(minutes=3)
FULL_SET = (("resp_rate", 16), ("spo2", 97), ("on_oxygen", 0), ("systolic_bp", 124),
            ("pulse", 72), ("consciousness", 0), ("temperature", 36.8))
# An event the hub sends within this long after the NOTIFY (a deadline, not a sleep).
WAIT_S = 15.0


def set_latest(conn: Conn, pid: int, code: str, value: float, at: dt.datetime) -> None:
    conn.execute(
        "INSERT INTO latest_readings (patient_id, code, measured_at, value, unit, device_id) "
        "VALUES (%s, %s, %s, %s, '', 'dev-x') ON CONFLICT (patient_id, code) DO UPDATE "
        "SET measured_at = EXCLUDED.measured_at, value = EXCLUDED.value", (pid, code, at, value))


def readings_event(conn: Conn, pids: list[int]) -> None:
    """What the gateway sends after committing new readings."""
    conn.execute("SELECT vw_notify(%s)",
                 (json.dumps({"type": "readings", "patient_ids": pids}),))
    conn.commit()


class Stream(threading.Thread):
    """`/api/events` read as a browser's EventSource; parsed `ward` events in `events`."""

    def __init__(self, base: str, token: str, *, rows: bool) -> None:
        super().__init__(daemon=True)
        self.url = base + ("/api/events?rows=1" if rows else "/api/events")
        self.headers = {"Authorization": f"Bearer {token}"}
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.open = threading.Event()

    def run(self) -> None:
        with contextlib.suppress(httpx.HTTPError), httpx.Client(
                timeout=httpx.Timeout(10, read=None)) as client, \
                client.stream("GET", self.url, headers=self.headers) as response:
            for line in response.iter_lines():
                if line.startswith(": connected"):
                    self.open.set()
                elif line.startswith("data: "):
                    self.events.put(json.loads(line[6:]))

    def next_readings(self, pids: list[int]) -> dict[str, Any]:
        """The first `readings` event naming `pids` (earlier events, e.g. the listener's
        first resync, are skipped)."""
        deadline = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=WAIT_S)
        while True:
            left = (deadline - dt.datetime.now(dt.UTC)).total_seconds()
            assert left > 0, f"no readings event for {pids}"
            event = self.events.get(timeout=left)
            if event["type"] == "readings" and sorted(event["patient_ids"]) == sorted(pids):
                return event


@pytest.fixture
def hub(db_url: str, to_url: Callable[[str], str], poll: Callable[..., None]
        ) -> Iterator[tuple[str, Any]]:
    """The hub over this test's schema, listening, its clock fixed at NOW; (url, app)."""
    app = create_app(Settings(database_url=SecretStr(to_url(db_url)), ward_beds=10),
                     clock=Clock(NOW), listen=True)
    with serve_app(app, poll) as base:
        poll(app.state.broadcaster.listening.is_set, 20, "the hub's LISTEN")
        yield base, app


def token_of(base: str, db: Conn, username: str, role: Role) -> str:
    create_user(db, username, PASSWORD, role=role, display_name=username.title())
    db.commit()
    response = httpx.post(base + "/api/auth/token",
                          json={"username": username, "password": PASSWORD})
    assert response.status_code == 200, response.text
    return str(response.json()["access_token"])


def open_stream(base: str, token: str, poll: Callable[..., None], app: Any, *, rows: bool
                ) -> Stream:
    before = app.state.broadcaster.subscribers
    stream = Stream(base, token, rows=rows)
    stream.start()
    assert stream.open.wait(WAIT_S), "the stream did not open"
    poll(lambda: app.state.broadcaster.subscribers > before, 10, "the stream's subscription")
    return stream


def test_pushed_rows_are_the_fetched_rows_with_stale_and_partial_values_marked(
    db: Conn, admit: Callable[..., int], hub: tuple[str, Any], poll: Callable[..., None],
) -> None:
    base, app = hub
    complete, stale, partial = admit(), admit(), admit()
    for code, value in FULL_SET:
        set_latest(db, complete, code, value, T0 - dt.timedelta(minutes=10))
        # Older than every staleness window: must never read as a normal score.
        set_latest(db, stale, code, value, T0 - dt.timedelta(hours=13))
    set_latest(db, partial, "spo2", 97, T0 - dt.timedelta(minutes=10))
    db.commit()
    token = token_of(base, db, "nurse", Role.HUB_NURSE)
    stream = open_stream(base, token, poll, app, rows=True)

    # New pulse values for all three, as the gateway writes them, then its event.
    for pid in (complete, stale, partial):
        set_latest(db, pid, "pulse", 131, NOW - dt.timedelta(seconds=5))
    readings_event(db, [complete, stale, partial])
    event = stream.next_readings([complete, stale, partial])

    assert isinstance(event.get("rows_html"), str), "the event carries the rows"
    fetched = httpx.get(base + "/ward/rows", params={"patient_id": [complete, stale, partial]},
                        headers={"Authorization": f"Bearer {token}"})
    assert fetched.status_code == 200
    assert event["rows_html"] == fetched.text
    assert event["admitted"] == int(fetched.headers["X-Ward-Admitted"]) == 3
    html = event["rows_html"]
    assert "131" in html, "the new value is in the pushed rows"
    rows = {pid: html[html.index(f'id="p-{pid}"'):] for pid in (complete, stale, partial)}
    rows = {pid: row[:row.index("</tr>")] for pid, row in rows.items()}
    # The stale row's old values are marked stale; the partial row's score is partial.
    assert 'class="vital stale" data-code="spo2"' in rows[stale]
    assert 'class="vital stale"' not in rows[complete]
    assert "n-incomplete" in rows[partial]
    assert "n-incomplete" not in rows[complete]
    assert app.state.pusher.batches >= 1


def test_each_stream_a_push_reaches_is_audited_before_it_is_sent(
    db: Conn, admit: Callable[..., int], hub: tuple[str, Any], poll: Callable[..., None],
) -> None:
    base, app = hub
    pid, other = admit(), admit()
    for code, value in FULL_SET:
        set_latest(db, pid, code, value, T0 - dt.timedelta(minutes=10))
    db.commit()
    nurse = token_of(base, db, "nurse", Role.HUB_NURSE)
    doctor = token_of(base, db, "doctor", Role.CLINICIAN)
    leaver = token_of(base, db, "leaver", Role.HUB_NURSE)
    streams = {name: open_stream(base, token, poll, app, rows=True)
               for name, token in (("nurse", nurse), ("doctor", doctor), ("leaver", leaver))}
    plain = open_stream(base, nurse, poll, app, rows=False)
    # The leaver logs out; their open stream must get no patient data from then on.
    assert httpx.delete(base + "/api/auth/token",
                        headers={"Authorization": f"Bearer {leaver}"}).status_code == 204
    db.execute("DELETE FROM audit_log")
    db.commit()

    set_latest(db, pid, "pulse", 99, NOW - dt.timedelta(seconds=5))
    readings_event(db, [pid])
    got = {name: s.next_readings([pid]) for name, s in streams.items()}
    # Committed before the push was sent: read at once, no waiting.
    audited = db.execute(
        "SELECT u.username, a.action, a.entity, a.patient_ids, a.detail FROM audit_log a "
        "JOIN users u ON u.id = a.user_id WHERE a.detail ->> 'pushed' = 'true' "
        "ORDER BY u.username").fetchall()
    db.commit()

    assert "rows_html" in got["nurse"]
    assert "rows_html" in got["doctor"]
    assert "rows_html" not in got["leaver"], "a revoked session's stream gets only ids"
    assert "rows_html" not in plain.next_readings([pid]), "a plain stream gets only ids"
    assert [(u, act, ent, ids) for u, act, ent, ids, _ in audited] == [
        ("doctor", "read", "ward", [pid]), ("nurse", "read", "ward", [pid])]
    assert len({d["stream"] for *_, d in audited}) == 2, "one audit row per stream"
    # Nothing else was audited as pushed: not the plain stream, not the leaver, not `other`.
    assert other not in {p for *_, ids, _ in audited for p in ids}

    # A second batch: one more audit row per stream, naming that batch's patients.
    set_latest(db, other, "pulse", 88, NOW - dt.timedelta(seconds=4))
    readings_event(db, [other])
    for name in ("nurse", "doctor"):
        assert "rows_html" in streams[name].next_readings([other])
    rows = db.execute("SELECT patient_ids FROM audit_log WHERE detail ->> 'pushed' = 'true' "
                      "AND patient_ids = %s::bigint[]", ([other],)).fetchall()
    assert len(rows) == 2


def test_a_batch_over_the_render_budget_is_sent_plain_and_fetched(
    db: Conn, admit: Callable[..., int], hub: tuple[str, Any], poll: Callable[..., None],
) -> None:
    """Rows expected to render past `push.BUDGET_MS` go out as the plain event (the page
    fetches them, as before the push): neither rows nor a pushed audit row."""
    from ward.hub import push

    base, app = hub
    pid = admit()
    token = token_of(base, db, "nurse", Role.HUB_NURSE)
    stream = open_stream(base, token, poll, app, rows=True)
    app.state.pusher.row_ms = push.BUDGET_MS + 1  # one row is already over the budget
    set_latest(db, pid, "pulse", 99, NOW - dt.timedelta(seconds=5))
    readings_event(db, [pid])
    assert "rows_html" not in stream.next_readings([pid])
    assert app.state.pusher.fallbacks >= 1
    assert db.execute("SELECT count(*) FROM audit_log WHERE detail ->> 'pushed' = 'true'"
                      ).fetchone() == (0,)
    db.commit()
