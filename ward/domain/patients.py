"""Patients and admissions: who is on the ward, how they came, how they left.

Step-up admissions avoid a hospital admission (GP, ambulance, 111, urgent community response,
ED); step-down admissions are early supported discharge from a hospital ward. An admission goes
referred → admitted → discharged, or referred → declined; the transitions are checked here.
"""

from __future__ import annotations

import datetime as dt
import enum
from dataclasses import dataclass, replace

from ward.domain import nhs_number
from ward.domain.errors import DomainError, InvalidTransition


class Pathway(enum.StrEnum):
    STEP_UP = "step_up"
    STEP_DOWN = "step_down"


class ReferralSource(enum.StrEnum):
    GP = "gp"
    AMBULANCE = "ambulance"
    NHS_111 = "111"
    URGENT_COMMUNITY_RESPONSE = "urgent_community_response"
    ED = "ed"
    HOSPITAL_WARD = "hospital_ward"
    SELF_CARER = "self_carer"  # the patient or their carer asked (step-up)


STEP_UP_SOURCES = frozenset(
    {
        ReferralSource.GP,
        ReferralSource.AMBULANCE,
        ReferralSource.NHS_111,
        ReferralSource.URGENT_COMMUNITY_RESPONSE,
        ReferralSource.ED,
        ReferralSource.SELF_CARER,
    }
)


class Urgency(enum.StrEnum):
    TWO_HOUR = "two_hour"  # urgent community response standard: seen within 2 hours
    SAME_DAY = "same_day"
    NEXT_DAY = "next_day"
    ROUTINE = "routine"


def pathway_for(source: ReferralSource) -> Pathway:
    """Step-down comes from a hospital ward; every other source is a step-up referral."""
    return Pathway.STEP_DOWN if source is ReferralSource.HOSPITAL_WARD else Pathway.STEP_UP


# The follow-up call after discharge: from one day after, due by the end of the second day
# (the standard is a call within 2 days). Every discharge makes exactly one (a worklist task).
FOLLOW_UP_AFTER = dt.timedelta(days=1)
FOLLOW_UP_DEADLINE = dt.timedelta(days=2)
# The national urgent community response standard: seen within 2 hours of referral (70 % of
# referrals is the target).
URGENT_RESPONSE = dt.timedelta(hours=2)


def urgent_response_met(due_at: dt.datetime, at: dt.datetime, *, seen: bool) -> bool | None:
    """The verdict of a 2-hour urgent response clock due at `due_at`, as known at `at`.

    Seen at `at` (the nurse completes the task): met when by the deadline, missed after it.
    Not seen (still open, or discharged unseen): missed once the deadline has passed, and that
    verdict cannot change; none yet while the clock still runs. The one rule for the worklist,
    the discharge hook, the deadline's sweep and the reports.
    """
    if seen:
        return at <= due_at
    return False if at > due_at else None


def follow_up_window(discharged_at: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """(not before, due by) of the follow-up call after a discharge at `discharged_at`."""
    return discharged_at + FOLLOW_UP_AFTER, discharged_at + FOLLOW_UP_DEADLINE


class FollowUpOutcome(enum.StrEnum):
    """How a follow-up call ended. Only REACHED counts as a follow-up call done."""

    REACHED = "reached"  # spoke to the patient or their carer
    NOT_REACHED = "not_reached"  # called, nobody answered (the attempt is recorded)
    READMITTED = "readmitted"  # closed by the ward: the patient came back before the call


# What a nurse may record when completing the call (READMITTED is the ward's own).
FOLLOW_UP_OUTCOMES = (FollowUpOutcome.REACHED.value, FollowUpOutcome.NOT_REACHED.value)


def has_room(admitted: int, beds: int) -> bool:
    """Whether one more patient fits: `admitted` patients on a ward of `beds` beds."""
    return admitted < beds


class AdmissionStatus(enum.StrEnum):
    REFERRED = "referred"
    DECLINED = "declined"
    ADMITTED = "admitted"
    DISCHARGED = "discharged"


class DischargeOutcome(enum.StrEnum):
    USUAL_RESIDENCE = "usual_residence"  # remained at usual place of residence
    CONVEYED_ED = "conveyed_ed"
    ADMITTED_HOSPITAL = "admitted_hospital"
    DIED = "died"
    TRANSFERRED = "transferred"


def _require_utc(name: str, when: dt.datetime | None) -> None:
    if when is not None and (when.tzinfo is None or when.utcoffset() != dt.timedelta(0)):
        msg = f"{name} must be timezone-aware UTC, got {when!r}"
        raise DomainError(msg)


@dataclass(frozen=True, slots=True)
class Patient:
    nhs_number: str
    given_name: str
    family_name: str
    date_of_birth: dt.date
    id: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "nhs_number", nhs_number.normalise(self.nhs_number))
        if not self.given_name.strip() or not self.family_name.strip():
            msg = f"patient names must not be empty: {self.given_name!r} {self.family_name!r}"
            raise DomainError(msg)


@dataclass(frozen=True, slots=True)
class Admission:
    patient_id: int
    pathway: Pathway
    source: ReferralSource
    referred_at: dt.datetime
    status: AdmissionStatus = AdmissionStatus.REFERRED
    decided_at: dt.datetime | None = None
    decision_reason: str | None = None
    admitted_at: dt.datetime | None = None
    discharged_at: dt.datetime | None = None
    outcome: DischargeOutcome | None = None
    id: int | None = None
    urgency: Urgency = Urgency.SAME_DAY

    def __post_init__(self) -> None:
        for name in ("referred_at", "decided_at", "admitted_at", "discharged_at"):
            _require_utc(name, getattr(self, name))
        if self.urgency is Urgency.TWO_HOUR and self.pathway is not Pathway.STEP_UP:
            msg = ("the 2-hour urgent community response is for step-up referrals from the "
                   "community; a step-down from a hospital ward is same day or later")
            raise DomainError(msg)
        if self.pathway is Pathway.STEP_UP and self.source not in STEP_UP_SOURCES:
            msg = f"a step-up referral cannot come from {self.source.value!r}"
            raise DomainError(msg)
        if self.pathway is Pathway.STEP_DOWN and self.source is not ReferralSource.HOSPITAL_WARD:
            msg = f"a step-down referral comes from a hospital ward, not {self.source.value!r}"
            raise DomainError(msg)

    @property
    def starts_urgent_clock(self) -> bool:
        """A new referral whose urgency is the 2-hour urgent response starts its clock (due
        `URGENT_RESPONSE` after referral); no other referral does."""
        return self.status is AdmissionStatus.REFERRED and self.urgency is Urgency.TWO_HOUR

    def admit(self, at: dt.datetime) -> Admission:
        if self.status is not AdmissionStatus.REFERRED:
            msg = f"cannot admit an admission that is {self.status.value}"
            raise InvalidTransition(msg)
        if at < self.referred_at:
            msg = f"admitted_at {at.isoformat()} is before referred_at {self.referred_at.isoformat()}"
            raise InvalidTransition(msg)
        return replace(self, status=AdmissionStatus.ADMITTED, decided_at=at, admitted_at=at)

    def decline(self, at: dt.datetime, reason: str) -> Admission:
        if self.status is not AdmissionStatus.REFERRED:
            msg = f"cannot decline an admission that is {self.status.value}"
            raise InvalidTransition(msg)
        if not reason.strip():
            msg = "declining a referral needs a reason"
            raise InvalidTransition(msg)
        return replace(
            self, status=AdmissionStatus.DECLINED, decided_at=at, decision_reason=reason
        )

    def discharge(self, at: dt.datetime, outcome: DischargeOutcome) -> Admission:
        if self.status is not AdmissionStatus.ADMITTED or self.admitted_at is None:
            msg = f"cannot discharge an admission that is {self.status.value}"
            raise InvalidTransition(msg)
        if at < self.admitted_at:
            msg = f"discharged_at {at.isoformat()} is before admitted_at {self.admitted_at.isoformat()}"
            raise InvalidTransition(msg)
        return replace(self, status=AdmissionStatus.DISCHARGED, discharged_at=at, outcome=outcome)


@dataclass(frozen=True, slots=True)
class Contact:
    """How to reach the patient at home, taken at admission (free text, as on the phone)."""

    address: str
    phone: str
    next_of_kin: str
    gp_practice: str

    def __post_init__(self) -> None:
        if not self.address.strip():
            msg = "the patient's address is needed: the ward visits and delivers kit there"
            raise DomainError(msg)
        digits = [ch for ch in self.phone if ch.isdigit()]
        if not 10 <= len(digits) <= 15 or any(ch not in "0123456789 +-()" for ch in self.phone):
            msg = f"phone {self.phone!r} is not a telephone number (10–15 digits)"
            raise DomainError(msg)


def kit_refusal(device_id: str, *, known: bool, active: bool, assigned_to: int | None,
                patient_id: int) -> str | None:
    """Why `device_id` cannot join this patient's kit, or None when it can."""
    if not known:
        return f"device {device_id!r} is not registered"
    if not active:
        return f"device {device_id!r} is deactivated"
    if assigned_to is not None and assigned_to != patient_id:
        return f"device {device_id!r} is already assigned to another patient"
    if assigned_to == patient_id:
        return f"device {device_id!r} is already assigned to this patient"
    return None
