"""The pure rules behind the manager's flows: pathway by source, capacity, the follow-up due
time, contact details, and why a device cannot join a kit."""

from __future__ import annotations

import datetime as dt

import pytest

from ward.domain.errors import DomainError
from ward.domain.patients import (
    Contact,
    Pathway,
    ReferralSource,
    follow_up_due,
    has_room,
    kit_refusal,
    pathway_for,
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


def test_follow_up_is_due_the_day_after_discharge():
    at = dt.datetime(2026, 3, 29, 0, 30, tzinfo=dt.UTC)  # the night the clocks change
    assert follow_up_due(at) == dt.datetime(2026, 3, 30, 0, 30, tzinfo=dt.UTC)


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
