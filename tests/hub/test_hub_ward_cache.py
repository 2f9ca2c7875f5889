"""The ward cache: rows stay cached until an event names the patient (real PostgreSQL, real
LISTEN/NOTIFY through the hub's own listener), and every kind of change announces itself."""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg
import pytest
from fastapi.testclient import TestClient

from ward.db import registry
from ward.domain.devices import Assignment, Device, DeviceKind
from ward.hub import events
from ward.hub.app import create_app
from ward.hub.auth import Role, create_user
from ward.hub.wardcache import WardCache
from ward.settings import Settings

Conn = psycopg.Connection[Any]
Row = dict[str, Any]
PASSWORD = "cache test password"
T0 = dt.datetime(2025, 3, 10, 9, 0, tzinfo=dt.UTC)  # the `clock` fixture's start


@pytest.fixture
def live(hub_settings: Settings, clock: Any, db: Conn) -> Iterator[TestClient]:
    """The hub with its LISTEN connection up (the cache is only trusted while it is)."""
    app = create_app(hub_settings, clock=clock, listen=True)
    create_user(db, "nurse1", PASSWORD, role=Role.HUB_NURSE, display_name="Nurse")
    db.commit()
    with TestClient(app, raise_server_exceptions=False) as client:
        deadline = time.monotonic() + 10
        while not app.state.broadcaster.listening.is_set():
            assert time.monotonic() < deadline, "listener never connected"
            time.sleep(0.01)
        _log_in_again(client)
        yield client


def _log_in_again(client: TestClient) -> None:
    token = client.post("/api/auth/token", json={"username": "nurse1",
                                                 "password": PASSWORD}).json()
    client.headers["Authorization"] = f"Bearer {token['access_token']}"


def cache_of(client: TestClient) -> WardCache:
    cache: WardCache = client.app.state.ward_cache  # type: ignore[attr-defined]
    return cache


def ward(client: TestClient) -> dict[int, Row]:
    response = client.get("/api/ward")
    assert response.status_code == 200, response.text
    return {r["patient_id"]: r for r in response.json()["rows"]}


def eventually(client: TestClient, check: Callable[[dict[int, Row]], bool]) -> dict[int, Row]:
    """Poll the ward view until `check` holds (the NOTIFY round trip takes milliseconds)."""
    deadline = time.monotonic() + 5
    while True:
        rows = ward(client)
        if check(rows):
            return rows
        assert time.monotonic() < deadline, f"ward view never changed: {rows}"
        time.sleep(0.02)


def settled(client: TestClient, count: Callable[[], int]) -> int:
    """`count()` once the notifications of changes the row already shows have landed (the
    admission's trigger, the readings' NOTIFY): the first request may compute the row before
    LISTEN delivers them, and each then recomputes it. Stable over three requests, 0.5 s
    apart, on a loaded machine."""
    deadline = time.monotonic() + 15
    last, stable = count(), 0
    while time.monotonic() < deadline and stable < 3:
        time.sleep(0.5)
        ward(client)
        now = count()
        stable = stable + 1 if now == last else 0
        last = now
    return last


def notify(conn: Conn, payload: dict[str, Any]) -> None:
    conn.execute("SELECT vw_notify(%s)", (json.dumps(payload),))


def set_latest(conn: Conn, pid: int, code: str, value: float, at: dt.datetime) -> None:
    conn.execute(
        "INSERT INTO latest_readings (patient_id, code, measured_at, value, unit, device_id) "
        "VALUES (%s, %s, %s, %s, '', 'dev-x') ON CONFLICT (patient_id, code) DO UPDATE "
        "SET measured_at = EXCLUDED.measured_at, value = EXCLUDED.value", (pid, code, at, value))


def set_full_set(conn: Conn, pid: int, at: dt.datetime, *, pulse: float = 80) -> None:
    """A complete NEWS2 set at `at` (every other parameter scoring 0), announced and committed."""
    for code, value in (("pulse", pulse), ("spo2", 97), ("resp_rate", 16), ("systolic_bp", 125),
                        ("temperature", 36.8), ("consciousness", 0), ("on_oxygen", 0)):
        set_latest(conn, pid, code, value, at)
    notify(conn, {"type": "readings", "patient_ids": [pid]})
    conn.commit()


def test_a_change_nobody_announced_stays_cached_until_an_event_names_the_patient(
        live: TestClient, admit: Callable[..., int], db: Conn) -> None:
    pid, other = admit(), admit(given="Brian", family="Worsening")
    before = ward(live)
    assert before[pid]["score"] is None
    cache = cache_of(live)
    recomputed = cache.recomputed
    set_latest(db, pid, "pulse", 140, T0 - dt.timedelta(minutes=1))
    db.commit()  # no NOTIFY: this hub cannot know
    assert ward(live)[pid]["score"] is None, "the row is served from the cache"
    assert cache.recomputed == recomputed
    notify(db, {"type": "readings", "patient_ids": [pid]})
    db.commit()
    rows = eventually(live, lambda r: r[pid]["score"] is not None)
    assert rows[pid]["score"]["sub_scores"]["pulse"] == 3
    assert rows[other] == before[other]


def _reading(conn: Conn, pid: int) -> Callable[[Row], bool]:
    set_latest(conn, pid, "resp_rate", 26, T0 - dt.timedelta(minutes=2))
    notify(conn, {"type": "readings", "patient_ids": [pid]})  # as the gateway does
    return lambda row: row["score"] is not None


def _score(conn: Conn, pid: int) -> Callable[[Row], bool]:
    conn.execute(
        "INSERT INTO scores (patient_id, computed_at, total, risk, any_single_3, complete, "
        "spo2_scale, sub_scores) VALUES (%s, %s, 7, 'high', true, true, 1, '{}')",
        (pid, T0 - dt.timedelta(minutes=1)))
    notify(conn, {"type": "score", "patient_id": pid})  # as the alerting runner does
    return lambda row: row["risk"] == "high"


def _alert(conn: Conn, pid: int) -> Callable[[Row], bool]:
    row = conn.execute(
        "INSERT INTO alerts (patient_id, kind, severity, state, summary, raised_at, updated_at) "
        "VALUES (%s, 'news2_high', 'high', 'raised', 'NEWS2 7', %s, %s) RETURNING id",
        (pid, T0, T0)).fetchone()
    assert row is not None
    notify(conn, {"type": "alert", "patient_id": pid, "alert_id": row[0], "state": "raised"})
    return lambda r: [a["summary"] for a in r["alerts"]] == ["NEWS2 7"]


# The rest announce themselves through migration 0031's triggers: no NOTIFY written here.
def _care_plan(conn: Conn, pid: int) -> Callable[[Row], bool]:
    conn.execute("INSERT INTO care_plans (patient_id, ceiling_of_care) VALUES (%s, 'palliative')",
                 (pid,))
    return lambda r: r["ceiling_of_care"] == "palliative"


def _patient(conn: Conn, pid: int) -> Callable[[Row], bool]:
    conn.execute("UPDATE patients SET family_name = 'Renamed' WHERE id = %s", (pid,))
    return lambda r: r["name"].endswith("Renamed")


def _assignment(conn: Conn, pid: int) -> Callable[[Row], bool]:
    registry.add_device(conn, Device("dev-assign", DeviceKind.PULSE_OXIMETER, "x"))
    registry.assign_device(conn, Assignment("dev-assign", pid, T0 - dt.timedelta(hours=1)))
    return lambda r: [d["device_id"] for d in r["devices"]] == ["dev-assign"]


def _device_status(conn: Conn, pid: int) -> Callable[[Row], bool]:
    conn.execute(
        "INSERT INTO device_status (device_id, online, battery_pct, reported_at, updated_at) "
        "VALUES ('dev-status', true, 12, %s, now())", (T0 - dt.timedelta(minutes=1),))
    return lambda r: [d["low_battery"] for d in r["devices"]] == [True]


@pytest.mark.parametrize("change", [_reading, _score, _alert, _care_plan, _patient,
                                    _assignment, _device_status])
def test_every_kind_of_change_reaches_a_cached_row(
        live: TestClient, admit: Callable[..., int], db: Conn, change: Any) -> None:
    pid, other = admit(), admit(given="Brian", family="Worsening")
    if change is _device_status:  # the device must be assigned before its status counts
        registry.add_device(db, Device("dev-status", DeviceKind.PULSE_OXIMETER, "x"))
        registry.assign_device(db, Assignment("dev-status", pid, T0 - dt.timedelta(hours=1)))
        db.commit()
        eventually(live, lambda r: len(r[pid]["devices"]) == 1)
    before = ward(live)
    check = change(db, pid)
    assert not check(before[pid])
    db.commit()
    rows = eventually(live, lambda r: pid in r and check(r[pid]))
    assert rows[other] == before[other]


def test_admission_and_discharge_by_any_writer(live: TestClient, admit: Callable[..., int],
                                              db: Conn, clock: Any) -> None:
    pid = admit()
    assert set(ward(live)) == {pid}
    newcomer = admit(given="New", family="Comer")  # straight into the tables (trigger)
    eventually(live, lambda r: set(r) == {pid, newcomer})
    db.execute("UPDATE admissions SET status = 'discharged', discharged_at = %s, "
               "outcome = 'usual_residence' WHERE patient_id = %s", (clock.now, pid))
    db.commit()
    eventually(live, lambda r: set(r) == {newcomer})
    assert live.get("/api/ward").json()["admitted"] == 1


def test_the_hubs_own_write_is_visible_to_the_next_request(
        live: TestClient, admit: Callable[..., int], db: Conn) -> None:
    pid = admit()
    create_user(db, "doc1", PASSWORD, role=Role.CLINICIAN, display_name="Doctor")
    db.commit()
    token = live.post("/api/auth/token", json={"username": "doc1", "password": PASSWORD}
                      ).json()["access_token"]
    assert ward(live)[pid]["ceiling_of_care"] == "full_escalation"
    # Deafen the cache to NOTIFY, so only the request's own after-commit invalidation can
    # refresh the row (the notification would otherwise race the next request).
    live.app.state.broadcaster._hooks.clear()  # type: ignore[attr-defined]
    response = live.put(f"/api/patients/{pid}/care-plan/ceiling",
                        headers={"Authorization": f"Bearer {token}"},
                        json={"ceiling": "not_for_conveyance", "reason": "ReSPECT form"})
    assert response.status_code == 200, response.text
    # No polling: the router's change is applied to this process's cache on commit.
    assert ward(live)[pid]["ceiling_of_care"] == "not_for_conveyance"


def test_time_driven_fields_move_without_a_recompute(
        live: TestClient, admit: Callable[..., int], db: Conn, clock: Any) -> None:
    pid = admit()
    # A full set with pulse 140, which scores 3 (a single 3: hourly observations); stale
    # after four hours. (A parameter never measured would be overdue from the admission.)
    set_full_set(db, pid, T0 - dt.timedelta(minutes=10), pulse=140)
    row = eventually(live, lambda r: r[pid]["score"] is not None)[pid]
    assert (row["minutes_since_observation"], row["overdue"]) == (10, False)
    # Recomputes other than the background full reload, which may run once a minute of real
    # time on a loaded machine (one admitted patient: each reload recomputes one row).
    def own() -> int:
        cache = cache_of(live)
        return cache.recomputed - cache.full_reloads

    recomputed = settled(live, own)
    clock.advance(minutes=45)
    row = ward(live)[pid]
    assert row["minutes_since_observation"] == 55
    assert row["overdue"] is False
    assert own() == recomputed
    clock.advance(minutes=25)  # 80 min: past 1 h + 15 min grace; overdue, still scored
    _log_in_again(live)
    row = ward(live)[pid]
    assert row["overdue"] is True
    assert row["score"] is not None
    assert own() == recomputed
    # 265 min: with no stored complete score the band is the never-scored 4 h: overdue
    clock.advance(minutes=185)
    _log_in_again(live)  # bearer tokens live an hour; the test clock moved past it
    row = ward(live)[pid]
    assert row["overdue"] is True
    # the 4-hour parameters went stale (air/oxygen keeps 12 h): recomputed, now partial
    assert row["score"]["complete"] is False
    assert own() == recomputed + 1


def test_resync_reloads_every_row(live: TestClient, admit: Callable[..., int]) -> None:
    admit()
    ward(live)
    cache = cache_of(live)
    reloads = cache.full_reloads
    cache.on_event(events.WardEvent("resync", ()))
    ward(live)
    assert cache.full_reloads == reloads + 1


def test_without_listen_every_request_reads_the_database(
        app_client: TestClient, staff: Any, admit: Callable[..., int], db: Conn) -> None:
    pid = admit()
    h = staff(Role.HUB_NURSE).headers
    assert app_client.get("/api/ward", headers=h).json()["rows"][0]["score"] is None
    set_latest(db, pid, "pulse", 140, T0 - dt.timedelta(minutes=1))
    db.commit()  # no NOTIFY, and no listener: still seen at once
    assert app_client.get("/api/ward", headers=h).json()["rows"][0]["score"] is not None


def test_probes_are_public_small_and_not_audited(live: TestClient, db: Conn) -> None:
    anonymous = {"Authorization": ""}
    audited = db.execute("SELECT count(*) FROM audit_log").fetchone()
    assert live.get("/healthz", headers=anonymous).json() == {"status": "ok"}
    ready = live.get("/readyz", headers=anonymous)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ok", "checks": {"database": "ok", "listen": "ok"}}
    assert db.execute("SELECT count(*) FROM audit_log").fetchone() == audited
    # LISTEN down: not ready (rows could be missing events), still alive.
    live.app.state.broadcaster.listening.clear()  # type: ignore[attr-defined]
    ready = live.get("/readyz", headers=anonymous)
    assert ready.status_code == 503
    assert ready.json()["checks"] == {"database": "ok", "listen": "unavailable"}
    assert live.get("/healthz", headers=anonymous).status_code == 200


def test_value_ages_and_overdue_flags_move_with_the_clock_on_cached_rows(
        live: TestClient, admit: Callable[..., int], db: Conn, clock: Any) -> None:
    pid = admit()
    set_full_set(db, pid, T0 - dt.timedelta(minutes=10))
    row = eventually(live, lambda r: r[pid]["score"] is not None)[pid]
    assert row["latest"]["spo2"] == {**row["latest"]["spo2"], "age_minutes": 10, "stale": False}
    assert not any(d["overdue"] for d in row["due"])
    clock.advance(seconds=30)
    assert ward(live)[pid]["latest"]["spo2"]["age_minutes"] == 10  # same minute: reused
    clock.advance(minutes=5)
    assert ward(live)[pid]["latest"]["spo2"]["age_minutes"] == 15
    # 4 h 30 min on, every 4-hour value is stale (the row is recomputed at that instant);
    # air/oxygen keeps its 12-hour window.
    clock.advance(hours=4, minutes=15)
    _log_in_again(live)
    row = ward(live)[pid]
    assert row["latest"]["spo2"]["stale"] is True
    assert row["latest"]["on_oxygen"]["stale"] is False


def test_a_request_for_some_rows_recomputes_only_those(
        live: TestClient, admit: Callable[..., int], db: Conn, clock: Any) -> None:
    """The page fetches the rows an event named; at 2,000 readings/s every other row has
    changed too, and recomputing all of them for each small request made the hub the
    machine's biggest consumer. The ward's admitted count stays exact all the same.
    (Checked: fails on the old code, which recomputed both rows.)"""
    pid, other = admit(), admit(given="Brian", family="Other")
    assert set(ward(live)) == {pid, other}
    cache = cache_of(live)
    # Deafen the cache to NOTIFY: only the invalidations below reach it.
    live.app.state.broadcaster._hooks.clear()  # type: ignore[attr-defined]
    before, reloads = cache.recomputed, cache.full_reloads
    cache.invalidate([pid, other])
    body = live.get("/api/ward", params={"patient_id": pid}).json()
    assert [r["patient_id"] for r in body["rows"]] == [pid]
    # A background full reload (once a minute of real time) recomputes both rows.
    assert cache.recomputed - before - 2 * (cache.full_reloads - reloads) == 1
    db.execute("UPDATE admissions SET status = 'discharged', discharged_at = %s, "
               "outcome = 'usual_residence' WHERE patient_id = %s", (clock.now, other))
    db.commit()
    cache.invalidate([other])
    body = live.get("/api/ward", params={"patient_id": pid}).json()
    assert body["admitted"] == 1, "a discharge not yet recomputed is still counted"
    assert set(ward(live)) == {pid}


def _row_html(client: TestClient, pid: int) -> str:
    response = client.get(f"/ward/rows?patient_id={pid}", headers={"Accept": "text/html"})
    assert response.status_code == 200, response.text
    return response.text


def test_a_cached_rows_html_moves_with_its_readings_the_clock_and_the_user(
        live: TestClient, admit: Callable[..., int], db: Conn, clock: Any) -> None:
    """The row's fixed parts are written once per computed row and kept with it
    (wardrow_html): a new reading, the clock and who is asking still show at once."""
    pid = admit()
    set_full_set(db, pid, T0 - dt.timedelta(minutes=10))
    eventually(live, lambda r: r[pid]["score"] is not None)
    first = _row_html(live, pid)
    assert "<abbr>HR</abbr> 80 " in first
    assert '<small class="age">10 min</small>' in first
    assert 'data-mine="0"' in first
    assert "stale" not in first
    assert _row_html(live, pid) == first  # the kept parts, at the same instant
    clock.advance(minutes=5)
    later = _row_html(live, pid)
    assert '<small class="age">15 min</small>' in later
    set_latest(db, pid, "pulse", 140, T0 + dt.timedelta(minutes=4))
    notify(db, {"type": "readings", "patient_ids": [pid]})
    db.commit()
    deadline = time.monotonic() + 5
    while "<abbr>HR</abbr> 140 " not in (shown := _row_html(live, pid)):
        assert time.monotonic() < deadline, shown
        time.sleep(0.02)
    assert "<abbr>HR</abbr> 80 " not in shown
    # Another nurse acknowledges an alert of the patient: the same cached row is "mine" for
    # her, not for nurse1.
    create_user(db, "nurse2", PASSWORD, role=Role.HUB_NURSE, display_name="Nurse Two")
    db.execute("INSERT INTO alerts (patient_id, kind, severity, state, summary, raised_at, "
               "updated_at, acknowledged_by, acknowledged_at) VALUES (%s, 'news2', 'medium', "
               "'acknowledged', 'NEWS2 5', %s, %s, 'nurse2', %s)",
               (pid, clock.now, clock.now, clock.now))
    notify(db, {"type": "alert", "patient_id": pid})
    db.commit()
    deadline = time.monotonic() + 5
    while "✓ nurse2" not in (shown := _row_html(live, pid)):
        assert time.monotonic() < deadline, shown
        time.sleep(0.02)
    assert 'data-mine="0"' in shown
    token = live.post("/api/auth/token", json={"username": "nurse2",
                                               "password": PASSWORD}).json()["access_token"]
    theirs = live.get(f"/ward/rows?patient_id={pid}",
                      headers={"Authorization": f"Bearer {token}", "Accept": "text/html"})
    assert 'data-mine="1"' in theirs.text
