"""The pure rules behind the manager's flows: pathway by source, capacity, the follow-up
window, which referral starts the 2-hour clock, contact details, and why a device cannot join
a kit."""

from __future__ import annotations

import datetime as dt

import pytest

from ward.domain.errors import DomainError
from ward.domain.patients import (
    Admission,
    AdmissionStatus,
    Contact,
    Pathway,
    ReferralSource,
    Urgency,
    follow_up_window,
    has_room,
    kit_refusal,
    pathway_for,
    urgent_response_met,
)


@pytest.mark.parametrize(("source", "pathway"), [
    *((s, Pathway.STEP_UP) for s in ReferralSource if s is not ReferralSource.HOSPITAL_WARD),
    (ReferralSource.HOSPITAL_WARD, Pathway.STEP_DOWN)])
def test_pathway_follows_the_source(source, pathway):
    assert pathway_for(source) is pathway


@pytest.mark.parametrize(("admitted", "beds", "room"), [
    (0, 1, True), (199, 200, True), (200, 200, False), (201, 200, False)])
def test_capacity(admitted, beds, room):
    assert has_room(admitted, beds) is room


def test_follow_up_call_is_from_one_day_to_two_days_after_discharge():
    at = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)  # the night the clocks change
    assert follow_up_window(at) == (dt.datetime(2026, 3, 30, 0, 30, tzinfo=dt.UTC),
                                    dt.datetime(2026, 3, 31, 0, 30, tzinfo=dt.UTC))


REFERRED = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.mark.parametrize(("urgency", "starts"), [
    (Urgency.TWO_HOUR, True), (Urgency.SAME_DAY, False), (Urgency.NEXT_DAY, False),
    (Urgency.ROUTINE, False)])
@pytest.mark.parametrize("source", [s for s in ReferralSource
                                    if s is not ReferralSource.HOSPITAL_WARD])
def test_only_a_two_hour_referral_starts_the_urgent_clock(urgency, starts, source):
    referral = Admission(1, Pathway.STEP_UP, source, REFERRED, urgency=urgency)
    assert referral.starts_urgent_clock is starts
    # Once decided, the referral starts nothing (the clock belongs to the new referral).
    assert referral.admit(REFERRED).starts_urgent_clock is False
    assert referral.decline(REFERRED, "no").status is AdmissionStatus.DECLINED


def test_a_step_down_is_never_a_two_hour_referral():
    with pytest.raises(DomainError, match="step-up referrals"):
        Admission(1, Pathway.STEP_DOWN, ReferralSource.HOSPITAL_WARD, REFERRED,
                  urgency=Urgency.TWO_HOUR)
    step_down = Admission(1, Pathway.STEP_DOWN, ReferralSource.HOSPITAL_WARD, REFERRED,
                          urgency=Urgency.SAME_DAY)
    assert step_down.starts_urgent_clock is False


@pytest.mark.parametrize(("known", "active", "assigned", "reason"), [
    (True, True, None, None),
    (False, False, None, "is not registered"),
    (True, False, None, "is deactivated"),
    (True, True, 7, "already assigned to another patient"),
    (True, True, 1, "already assigned to this patient"),
])
def test_kit_refusals(known, active, assigned, reason):
    got = kit_refusal("ox-1", known=known, active=active, assigned_to=assigned, patient_id=1)
    assert got is None if reason is None else reason in (got or "")


@pytest.mark.parametrize(("address", "phone", "ok"), [
    ("1 Mill Lane", "0113 496 0000", True), ("1 Mill Lane", "+44 (0)113 496-0000", True),
    (" ", "0113 496 0000", False), ("1 Mill Lane", "12345", False),
    ("1 Mill Lane", "0113 496 0000 ext", False)])
def test_contact_details(address, phone, ok):
    if ok:
        assert Contact(address, phone, "", "").phone == phone
    else:
        with pytest.raises(DomainError):
            Contact(address, phone, "", "")


DUE = REFERRED + dt.timedelta(hours=2)


@pytest.mark.parametrize(("at", "seen", "verdict"), [
    (DUE - dt.timedelta(minutes=1), True, True),
    (DUE, True, True),  # seen on the deadline: met
    (DUE + dt.timedelta(seconds=1), True, False),
    (DUE - dt.timedelta(minutes=1), False, None),  # still running
    (DUE, False, None),
    (DUE + dt.timedelta(seconds=1), False, False),  # the deadline passed unseen: missed
    (DUE + dt.timedelta(days=3), False, False)])
def test_the_urgent_clock_is_met_by_its_deadline_and_missed_once_it_passes_unseen(
        at, seen, verdict):
    assert urgent_response_met(DUE, at, seen=seen) is verdict
