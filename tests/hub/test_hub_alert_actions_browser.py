"""Acting on alert episodes from the screen, in a real browser, with a second nurse watching.

Two Chromium contexts (two nurses) log in to a live hub. Observations entered through the hub's
API (as the observation form does) raise high episodes; nurse A acknowledges, escalates now to
a named contact, adds a note, snoozes and resolves with a reason — every step from the card's
buttons and forms — and nurse B's alerts page follows each one without a reload (the SSE
stream). The nav badge and the page heading count what needs action; the tab title signals a
high episode until it is acknowledged, and the sound (switched on by the nurse, remembered in
localStorage) plays for a new one. Screenshot: artifacts/hub-alert-cards.png.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from pydantic import SecretStr

from tests.hub.browser import ARTIFACTS, launch, login, needs_chromium
from ward.hub.auth import Role, create_user
from ward.settings import Settings

pytestmark = pytest.mark.browser
# NEWS2 high: SpO2 89 (3), pulse 135 (3), resp rate 26 (3), temperature 39.4 (2).
HIGH = [{"code": "spo2", "value": 89}, {"code": "pulse", "value": 135},
        {"code": "resp_rate", "value": 26}, {"code": "temperature", "value": 39.4, "unit": "°C"},
        {"code": "systolic_bp", "value": 128}, {"code": "consciousness", "value": "A"},
        {"code": "on_oxygen", "value": "air"}]
POST_JS = """async ([pid, obs]) => (await fetch('/api/patients/' + pid + '/observations', {
  method: 'POST', credentials: 'same-origin',
  headers: {'Content-Type': 'application/json', Accept: 'application/json'},
  body: JSON.stringify({observations: obs, note: 'phoned the patient'})})).status"""


def _login(browser: Any, base: str, user: str) -> Any:
    page = login(browser.new_context(viewport={"width": 1400, "height": 900}).new_page(), base,
                 user, path="/alerts")
    page.locator("#live[data-state=live]").wait_for(timeout=10000)
    return page


@needs_chromium
def test_nurse_acts_on_episodes_from_the_screen_and_the_other_browser_follows(
    db: psycopg.Connection[Any], db_url: str, admit: Callable[..., int],
    to_url: Callable[[str], str], poll: Callable[..., None],
    hub_server: Callable[..., str],
) -> None:
    from playwright.sync_api import expect

    for user, name in (("nurse-a", "Nurse A"), ("nurse-b", "Nurse B")):
        create_user(db, user, f"{user}-password", role=Role.HUB_NURSE, display_name=name)
    db.commit()
    now = dt.datetime.now(dt.UTC)
    first = admit(given="Brian", family="Worsening", at=now - dt.timedelta(days=1))
    second = admit(given="Carol", family="Later", at=now - dt.timedelta(days=1))
    settings = Settings(database_url=SecretStr(to_url(db_url)), ward_beds=10)
    with contextlib.ExitStack() as stack:
        base = hub_server(settings)
        browser = launch(stack)
        a, b = _login(browser, base, "nurse-a"), _login(browser, base, "nurse-b")
        expect(a.locator("#alert-count")).to_be_hidden()
        assert not a.title().startswith("⚠")

        assert a.evaluate(POST_JS, [first, HIGH]) == 201
        eid = _episode(db, first)
        card_a = a.locator(f"#episode-{eid}")
        card_b = b.locator(f"#episodes-new #episode-{eid}")
        expect(card_b).to_be_visible(timeout=5000)  # B: no reload
        expect(card_a).to_be_visible()
        for page in (a, b):  # the badge and the heading count the same thing
            expect(page.locator("#alert-count")).to_have_text("1")
            expect(page.locator("#needs-action-total")).to_have_text("1")
            _signals_high(page)

        # Sound: switched on in A (remembered), plays when a *new* high episode appears.
        a.click("#sound-toggle")
        expect(a.locator("#sound-toggle")).to_have_attribute("aria-pressed", "true")
        assert a.evaluate("localStorage.getItem('vw.sound')") == "on"
        plays = int(a.evaluate("Number(document.body.dataset.soundPlays || 0)"))
        assert a.evaluate(POST_JS, [second, HIGH]) == 201
        other = _episode(db, second)
        expect(b.locator(f"#episodes-new #episode-{other}")).to_be_visible(timeout=5000)
        a.wait_for_function(f"() => Number(document.body.dataset.soundPlays || 0) > {plays}",
                            timeout=5000)
        expect(b.locator("#alert-count")).to_have_text("2")

        # Acknowledge: moves to "Acknowledged" in B; badge and heading drop to 1.
        card_a.locator("button[data-ack]").click()
        expect(b.locator(f"#episodes-acknowledged #episode-{eid}")).to_contain_text(
            "acknowledged by nurse-a", timeout=5000)
        for page in (a, b):
            expect(page.locator("#alert-count")).to_have_text("1")
            expect(page.locator("#needs-action-total")).to_have_text("1")

        # Escalate now to a named contact: B shows who (target, contacts) and when.
        card_a = a.locator(f"#episode-{eid}")
        card_a.locator("details.act:has(form[data-action=escalate]) > summary").click()
        form = card_a.locator("form[data-action=escalate]")
        form.locator("select[name=to]").select_option("urgent_response")
        form.locator("input[name=reason]").fill("looks grey on video")
        form.locator("button[type=submit]").click()
        esc = b.locator(f"#episode-{eid} .esc-who")
        expect(esc).to_contain_text("urgent response", timeout=5000)
        expect(esc).to_contain_text("urgent-response-team")
        expect(esc).to_contain_text("by nurse-a")

        # A note, then a snooze with a reason: both in B's timeline; the card moves to Snoozed.
        card_a = a.locator(f"#episode-{eid}")
        card_a.locator("details.act:has(form[data-action=note]) > summary").click()
        card_a.locator("form[data-action=note] input[name=text]").fill("visit booked 14:00")
        card_a.locator("form[data-action=note] button[type=submit]").click()
        expect(b.locator(f"#episode-{eid} ol.timeline")).to_contain_text(
            "visit booked 14:00", timeout=5000)
        card_a = a.locator(f"#episode-{eid}")
        card_a.locator("details.act:has(form[data-action=snooze]) > summary").click()
        snooze = card_a.locator("form[data-action=snooze]")
        snooze.locator("select[name=minutes]").select_option("30")
        snooze.locator("input[name=reason]").fill("waiting for the visit")
        snooze.locator("button[type=submit]").click()
        snoozed = b.locator(f"#episodes-snoozed #episode-{eid}")
        expect(snoozed).to_be_visible(timeout=5000)
        expect(snoozed.locator("ol.timeline")).to_contain_text("waiting for the visit")
        expect(snoozed.locator("ol.timeline")).to_contain_text("nurse-a")

        # The second (still high, raised) episode keeps the title signal until acknowledged.
        _signals_high(a)
        a.locator(f"#episode-{other} button[data-ack]").click()
        expect(b.locator(f"#episodes-acknowledged #episode-{other}")).to_be_visible(timeout=5000)
        for page in (a, b):
            expect(page.locator("body")).to_have_attribute("data-attention", "none",
                                                           timeout=3000)
            expect(page).to_have_title("Alerts · virtualward hub")
            expect(page.locator("#alert-count")).to_be_hidden()
            expect(page.locator("#needs-action-total")).to_have_text("0")
        ARTIFACTS.mkdir(exist_ok=True)
        b.screenshot(path=str(ARTIFACTS / "hub-alert-cards.png"), full_page=True)

        # Resolve with a reason from the list (+ free text): gone from B's page.
        card_a = a.locator(f"#episode-{other}")
        card_a.locator("details.act:has(form[data-action=resolve]) > summary").click()
        resolve = card_a.locator("form[data-action=resolve]")
        resolve.locator("select[name=reason]").select_option("Treated at home")
        resolve.locator("input[name=detail]").fill("antipyretic, repeat obs 1 h")
        resolve.locator("button[type=submit]").click()
        expect(b.locator(f"#episode-{other}")).to_have_count(0, timeout=5000)

        # The patient page shows the episode card with its timeline (who, when, what).
        b.goto(f"{base}/patients/{first}")
        timeline = b.locator(f"#episode-{eid} ol.timeline")
        expect(timeline).to_contain_text("Escalated")
        expect(timeline).to_contain_text("visit booked 14:00")

    row = db.execute("SELECT state, resolution_reason, resolved_by FROM alerts WHERE id = %s",
                     (other,)).fetchone()
    assert row == ("resolved", "Treated at home — antipyretic, repeat obs 1 h", "nurse-a")
    audited = {r[0] for r in db.execute(
        "SELECT action FROM audit_log WHERE entity = 'alert' AND entity_id = ANY(%s)",
        ([str(eid), str(other)],))}
    assert {"acknowledge", "escalate", "note", "snooze", "resolve"} <= audited, audited


def _episode(db: psycopg.Connection[Any], patient_id: int) -> int:
    row = db.execute("SELECT id FROM alerts WHERE patient_id = %s AND state <> 'resolved'",
                     (patient_id,)).fetchone()
    db.commit()
    assert row is not None
    return int(row[0])


def _signals_high(page: Any) -> None:
    """The attention state is on, and the (blinking) title shows the warning within 10 s (a loaded machine)."""
    # Functions, not expressions: Playwright evaluates an expression string with eval(),
    # which the hub's CSP (script-src 'self') refuses.
    page.wait_for_function("() => document.body.dataset.attention === 'high'", timeout=10000)
    page.wait_for_function("() => /^⚠ \\d+ HIGH alert/.test(document.title)", timeout=10000)


def _open_action(card: Any, action: str) -> Any:
    card.locator(f"details.act:has(form[data-action={action}]) > summary").click()
    return card.locator(f"form[data-action={action}]")


@needs_chromium
def test_the_ward_pages_queue_offers_every_action_and_the_other_ward_follows(
    db: psycopg.Connection[Any], admit: Callable[..., int], hub_server: Callable[..., str],
) -> None:
    """The queue beside the ward is the alerts page's cards with the same forms and script:
    nurse A acknowledges, escalates now, adds a note, snoozes and resolves from the ward page;
    nurse B's ward page (queue and the patient's row) follows each step without a reload."""
    from playwright.sync_api import expect

    for user, name in (("nurse-a", "Nurse A"), ("nurse-b", "Nurse B")):
        create_user(db, user, f"{user}-password", role=Role.HUB_NURSE, display_name=name)
    db.commit()
    now = dt.datetime.now(dt.UTC)
    pid = admit(given="Dora", family="Ward", at=now - dt.timedelta(days=1))
    with contextlib.ExitStack() as stack:
        base = hub_server()
        browser = launch(stack)
        a, b = (_login(browser, base, user) for user in ("nurse-a", "nurse-b"))
        for page in (a, b):
            page.goto(base + "/")
            page.locator("#live[data-state=live]").wait_for(timeout=10000)
        b.evaluate("window.vwNotReloaded = true")
        assert a.evaluate(POST_JS, [pid, HIGH]) == 201
        eid = _episode(db, pid)
        row_b = b.locator(f"#p-{pid} td.alerts")
        expect(b.locator(f"aside.queue #episodes-new #episode-{eid}")).to_be_visible(timeout=5000)
        expect(row_b.locator(".mini")).to_have_count(1, timeout=5000)
        expect(b.locator("#needs-action-total")).to_have_text("1")

        card = a.locator(f"aside.queue #episode-{eid}")
        card.locator("button[data-ack]").click()
        expect(b.locator(f"aside.queue #episodes-acknowledged #episode-{eid}")).to_contain_text(
            "acknowledged by nurse-a", timeout=5000)
        expect(row_b.locator(".acked")).to_contain_text("nurse-a", timeout=5000)
        expect(b.locator("#needs-action-total")).to_have_text("0")

        escalate = _open_action(a.locator(f"aside.queue #episode-{eid}"), "escalate")
        escalate.locator("select[name=to]").select_option("urgent_response")
        escalate.locator("input[name=reason]").fill("breathless on the phone")
        escalate.locator("button[type=submit]").click()
        expect(b.locator(f"aside.queue #episode-{eid} .esc-who")).to_contain_text(
            "urgent response", timeout=5000)

        note = _open_action(a.locator(f"aside.queue #episode-{eid}"), "note")
        note.locator("input[name=text]").fill("daughter on her way")
        note.locator("button[type=submit]").click()
        expect(b.locator(f"aside.queue #episode-{eid} ol.timeline")).to_contain_text(
            "daughter on her way", timeout=5000)

        snooze = _open_action(a.locator(f"aside.queue #episode-{eid}"), "snooze")
        snooze.locator("select[name=minutes]").select_option("15")
        snooze.locator("input[name=reason]").fill("repeat obs in 15 min")
        snooze.locator("button[type=submit]").click()
        snoozed = b.locator(f"aside.queue #episodes-snoozed #episode-{eid}")
        expect(snoozed).to_be_visible(timeout=5000)
        expect(snoozed.locator("ol.timeline")).to_contain_text("repeat obs in 15 min")
        ARTIFACTS.mkdir(exist_ok=True)
        b.screenshot(path=str(ARTIFACTS / "hub-ward-queue-actions.png"))

        resolve = _open_action(a.locator(f"aside.queue #episode-{eid}"), "resolve")
        resolve.locator("select[name=reason]").select_option("Treated at home")
        resolve.locator("button[type=submit]").click()
        expect(b.locator(f"#episode-{eid}")).to_have_count(0, timeout=5000)
        expect(row_b.locator(".mini")).to_have_count(0, timeout=5000)
        # B never reloaded: a reload would have dropped what its window held.
        assert b.evaluate("window.vwNotReloaded === true")

    row = db.execute("SELECT state, resolved_by FROM alerts WHERE id = %s", (eid,)).fetchone()
    assert row == ("resolved", "nurse-a")
    audited = {r[0] for r in db.execute(
        "SELECT action FROM audit_log WHERE entity = 'alert' AND entity_id = %s", (str(eid),))}
    assert {"acknowledge", "escalate", "note", "snooze", "resolve"} <= audited, audited
