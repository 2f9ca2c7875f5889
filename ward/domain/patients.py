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


STEP_UP_SOURCES = frozenset(
    {
        ReferralSource.GP,
        ReferralSource.AMBULANCE,
        ReferralSource.NHS_111,
        ReferralSource.URGENT_COMMUNITY_RESPONSE,
        ReferralSource.ED,
    }
)


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

    def __post_init__(self) -> None:
        for name in ("referred_at", "decided_at", "admitted_at", "discharged_at"):
            _require_utc(name, getattr(self, name))
        if self.pathway is Pathway.STEP_UP and self.source not in STEP_UP_SOURCES:
            msg = f"a step-up referral cannot come from {self.source.value!r}"
            raise DomainError(msg)
        if self.pathway is Pathway.STEP_DOWN and self.source is not ReferralSource.HOSPITAL_WARD:
            msg = f"a step-down referral comes from a hospital ward, not {self.source.value!r}"
            raise DomainError(msg)

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
