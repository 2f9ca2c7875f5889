"""Admissions, devices and assignments as pure domain types."""

from __future__ import annotations

import datetime as dt

import pytest

from ward.domain.devices import Assignment, Device, DeviceKind, patient_at
from ward.domain.errors import DomainError, InvalidTransition
from ward.domain.patients import (
    Admission,
    AdmissionStatus,
    DischargeOutcome,
    Pathway,
    Patient,
    ReferralSource,
)
from ward.domain.readings import Reading

T0 = dt.datetime(2026, 11, 24, 9, 0, tzinfo=dt.UTC)


def test_patient_normalises_nhs_number() -> None:
    patient = Patient("943 476 5919", "Ada", "Lovelace", dt.date(1950, 1, 1))
    assert patient.nhs_number == "9434765919"


def test_patient_rejects_blank_names() -> None:
    with pytest.raises(DomainError, match="names"):
        Patient("9434765919", " ", "Lovelace", dt.date(1950, 1, 1))


def test_admission_lifecycle() -> None:
    referral = Admission(1, Pathway.STEP_UP, ReferralSource.GP, T0)
    admitted = referral.admit(T0 + dt.timedelta(hours=1))
    assert admitted.status is AdmissionStatus.ADMITTED
    discharged = admitted.discharge(T0 + dt.timedelta(days=5), DischargeOutcome.USUAL_RESIDENCE)
    assert discharged.outcome is DischargeOutcome.USUAL_RESIDENCE
    with pytest.raises(InvalidTransition, match="discharged"):
        discharged.admit(T0 + dt.timedelta(days=6))


def test_decline_needs_reason() -> None:
    referral = Admission(1, Pathway.STEP_DOWN, ReferralSource.HOSPITAL_WARD, T0)
    with pytest.raises(InvalidTransition, match="reason"):
        referral.decline(T0, " ")
    assert referral.decline(T0, "no carer at home").status is AdmissionStatus.DECLINED


def test_pathway_must_match_source() -> None:
    with pytest.raises(DomainError, match="step-down"):
        Admission(1, Pathway.STEP_DOWN, ReferralSource.GP, T0)
    with pytest.raises(DomainError, match="step-up"):
        Admission(1, Pathway.STEP_UP, ReferralSource.HOSPITAL_WARD, T0)


def test_cannot_discharge_before_admission() -> None:
    admitted = Admission(1, Pathway.STEP_UP, ReferralSource.ED, T0).admit(T0)
    with pytest.raises(InvalidTransition, match="before admitted_at"):
        admitted.discharge(T0 - dt.timedelta(minutes=1), DischargeOutcome.DIED)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(DomainError, match="UTC"):
        Admission(1, Pathway.STEP_UP, ReferralSource.GP, dt.datetime(2026, 11, 24, 9))  # noqa: DTZ001


def test_device_id_alphabet() -> None:
    Device("ox-0001", DeviceKind.PULSE_OXIMETER)
    for bad in ["", "a/b", "a+b", "a#", "x" * 65, "-lead"]:
        with pytest.raises(DomainError, match="invalid device id"):
            Device(bad, DeviceKind.THERMOMETER)


def test_assignment_attribution_by_measured_time() -> None:
    first = Assignment("ox-1", 10, T0, T0 + dt.timedelta(days=2))
    second = Assignment("ox-1", 20, T0 + dt.timedelta(days=2))
    assignments = [first, second]
    assert patient_at(assignments, "ox-1", T0) == 10
    assert patient_at(assignments, "ox-1", T0 + dt.timedelta(days=2)) == 20  # end is exclusive
    assert patient_at(assignments, "ox-1", T0 - dt.timedelta(seconds=1)) is None
    assert patient_at(assignments, "ox-2", T0) is None
    assert not first.overlaps(second)
    assert Assignment("ox-1", 30, T0 + dt.timedelta(days=1)).overlaps(first)


def test_assignment_must_end_after_start() -> None:
    with pytest.raises(DomainError, match="before it starts"):
        Assignment("ox-1", 1, T0, T0)


def test_reading_requires_utc() -> None:
    with pytest.raises(DomainError, match="UTC"):
        Reading("ox-1", "spo2", T0.astimezone(dt.timezone(dt.timedelta(hours=1))), 95, "%", 1, T0)
