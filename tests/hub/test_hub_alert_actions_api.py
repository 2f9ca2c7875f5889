"""The alert actions' API and fragments on a real database: escalate now and notes (audited),
the needs-action count the badge and heading share, who-and-when on the episode card, the
favicon, and "ago" times the browser can keep counting."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ward.hub.auth import Role

HIGH = [{"code": "spo2", "value": 89}, {"code": "pulse", "value": 135},
        {"code": "resp_rate", "value": 26}, {"code": "temperature", "value": 39.4},
        {"code": "systolic_bp", "value": 128}, {"code": "consciousness", "value": "A"},
        {"code": "on_oxygen", "value": "air"}]
HTML = {"Accept": "text/html"}


def _episode(app_client: Any, headers: dict[str, str], pid: int) -> int:
    r = app_client.post(f"/api/patients/{pid}/observations", headers=headers,
                        json={"observations": HIGH, "method": "phone"})
    assert r.status_code == 201, r.text
    alerts = app_client.get("/api/alerts", headers=headers, params={"patient_id": pid}).json()
    return int(alerts["items"][0]["id"])


def test_badge_counts_what_needs_action_and_cards_say_who_escalated_when(
        app_client, staff, admit, db, clock) -> None:
    nurse = staff(Role.HUB_NURSE)
    first = _episode(app_client, nurse.headers, admit(at=clock.now - dt.timedelta(days=1)))
    second = _episode(app_client, nurse.headers, admit(at=clock.now - dt.timedelta(days=1)))
    counts = app_client.get("/api/alerts/counts", headers=nurse.headers).json()
    assert counts == {"needs_action": 2, "acknowledged": 0, "snoozed": 0,
                      "high_ids": sorted([first, second])}
    clock.advance(minutes=1)
    assert app_client.post(f"/api/alerts/{first}/acknowledge",
                           headers=nurse.headers).status_code == 200
    clock.advance(minutes=1)
    r = app_client.post(f"/api/alerts/{second}/snooze", headers=nurse.headers,
                        json={"minutes": 10, "reason": "calling back in 10 min"})
    assert r.status_code == 200, r.text
    assert r.json()["events"][-1]["detail"]["reason"] == "calling back in 10 min"
    counts = app_client.get("/api/alerts/counts", headers=nurse.headers).json()
    assert (counts["needs_action"], counts["acknowledged"], counts["snoozed"]) == (0, 1, 1)
    cards = app_client.get("/alerts/cards", headers={**nurse.headers, **HTML})
    assert cards.headers["X-Open-Alerts"] == "0"  # two open, none needing action
    page = app_client.get("/alerts", headers={**nurse.headers, **HTML}).text
    assert '<span class="needs-action-total" id="needs-action-total">0</span>' in page
    assert 'id="alert-count" hidden' in page

    clock.advance(minutes=1)  # 09:03 UTC = 09:03 GMT
    r = app_client.post(f"/api/alerts/{first}/escalate", headers=nurse.headers,
                        json={"reason": "looks unwell on video"})
    assert r.status_code == 200, r.text
    assert (r.json()["escalation_tier"], r.json()["escalation_target"]) == (1, "on_call_clinician")
    card = app_client.get("/alerts/cards", headers={**nurse.headers, **HTML},
                          params={"patient_id": r.json()["patient_id"]}).text
    assert ("Escalated to <strong>on call clinician</strong> (tier 1) — Day consultant "
            f"(weekdays) · sms +447700900101 at 09:03 by {nurse.username}") in card
    bad = app_client.post(f"/api/alerts/{first}/escalate", headers=nurse.headers,
                          json={"to": "the_pope"})
    assert bad.status_code == 409, bad.text
    note = app_client.post(f"/api/alerts/{first}/notes", headers=nurse.headers,
                           json={"text": "GP informed"})
    assert note.status_code == 201, note.text
    assert note.json()["events"][-1] == {**note.json()["events"][-1], "event": "note",
                                         "actor": nurse.username}
    assert app_client.post(f"/api/alerts/{first}/notes", headers=nurse.headers,
                           json={"text": ""}).status_code == 422
    audited = [a for (a,) in db.execute(
        "SELECT action FROM audit_log WHERE entity = 'alert' AND entity_id = %s ORDER BY id",
        (str(first),))]
    db.commit()
    assert {"acknowledge", "escalate", "note"} <= set(audited)
    assert app_client.get("/api/alerts/escalation-targets", headers=nurse.headers).json() == [
        "gp", "hub_nurse", "on_call_clinician", "out_of_hours", "palliative_team",
        "urgent_response"]


def test_favicon_and_counting_ago(app_client, staff, admit, clock) -> None:
    nurse = staff(Role.HUB_NURSE)
    icon = app_client.get("/static/favicon.svg")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    pid = admit(at=clock.now - dt.timedelta(days=1))
    _episode(app_client, nurse.headers, pid)
    clock.advance(minutes=16)
    page = app_client.get(f"/patients/{pid}", headers={**nurse.headers, **HTML}).text
    assert '<link rel="icon" href="/static/favicon.svg"' in page
    assert 'data-tz="Europe/London"' in page
    assert 'data-age="960">16 min ago</time>' in page
