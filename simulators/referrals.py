"""Simulated referrals: the stream of people a hospital-at-home service is asked to take.

`vward demo` feeds this stream into the referral triage queue (`ward.hub.demo_referrals`
does the writing), so the queue is never empty and keeps moving. Each referral comes from
one of the sources a virtual ward hears from — GP, ambulance crew, NHS 111, the emergency
department, the urgent community response team, a hospital ward stepping a patient down, the
patient or their carer — with a presenting reason, the observations the referrer gave (an
ambulance crew gives a full set; a carer on the phone gives little or none) and an urgency
that follows from both (a 2-hour response for the unwell at home, never for a planned
step-down).

Pure: a seeded `random.Random` and the start instant are the only inputs; the same seed gives
the same referrals, at the same instants. Arrivals are a Poisson process (exponential gaps)
at `per_hour` referrals an hour of simulated time. The mix of sources, the reasons and the
observation ranges are illustrative, chosen to look like a week of a real service's referrals
(VIRTUAL_WARD.md: ~80 % step-up, ~20 % step-down), not a clinical data set.

Patients are new people with NHS numbers from the 999 test range (never a real person), in a
block of their own (`simulators.ward.nhs_numbers`' rule: a block per name).
"""

from __future__ import annotations

import datetime as dt
import random
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TypeVar

from ward.domain.nhs_number import with_check_digit
from ward.domain.patients import Pathway, ReferralSource, Urgency, pathway_for

# The block of the 999 test range these patients' numbers come from (as simulators.ward).
_TEST_RANGE_START, _BLOCK, _BLOCKS = 999_000_000, 12_000, 83
NAME = "vward demo referrals"

# Share of referrals by source. Step-down (hospital ward) ~20 %, the rest step-up.
SOURCES: tuple[tuple[ReferralSource, float], ...] = (
    (ReferralSource.GP, 0.24), (ReferralSource.AMBULANCE, 0.14),
    (ReferralSource.NHS_111, 0.10), (ReferralSource.ED, 0.14),
    (ReferralSource.URGENT_COMMUNITY_RESPONSE, 0.13), (ReferralSource.HOSPITAL_WARD, 0.20),
    (ReferralSource.SELF_CARER, 0.05))

LOW, MODERATE, HIGH = "low", "moderate", "high"
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Reason:
    text: str
    acuity: tuple[float, float, float]  # weights of low, moderate, high
    copd: bool = False  # chronic hypoxia: SpO2 runs lower
    infection: bool = False  # fever and a faster pulse


_STEP_UP_REASONS = (
    Reason("COPD exacerbation: more breathless, sputum changed colour", (2, 5, 3), copd=True),
    Reason("Suspected urinary tract infection, newly confused", (3, 5, 2), infection=True),
    Reason("Cellulitis of the left leg, needs IV antibiotics", (5, 4, 1), infection=True),
    Reason("Heart failure: ankles swollen, weight up 2 kg this week", (4, 5, 1)),
    Reason("Fall at home, no injury found, lives alone", (6, 3, 1)),
    Reason("Community-acquired pneumonia, eating and drinking", (2, 5, 3), infection=True),
    Reason("Frailty: off legs, reduced intake for three days", (4, 5, 1)),
    Reason("Chest infection on a background of COPD", (2, 5, 3), copd=True, infection=True),
    Reason("Dehydration after diarrhoea and vomiting", (4, 5, 1)),
)
_STEP_DOWN_REASONS = (
    Reason("Early supported discharge: finishing IV antibiotics at home", (7, 3, 0),
           infection=True),
    Reason("Heart failure: continue IV diuretics at home", (6, 4, 0)),
    Reason("Recovering from pneumonia, still on oxygen at night", (5, 5, 0), copd=True),
    Reason("After hip fracture surgery: observations while mobilising", (8, 2, 0)),
    Reason("COPD admission: home with monitoring and rescue pack", (6, 4, 0), copd=True),
)

# Observation ranges by acuity: (resp rate, SpO2, pulse, systolic BP, temperature).
_RANGES: dict[str, tuple[tuple[float, float], ...]] = {
    LOW: ((13, 19), (95, 99), (62, 92), (118, 152), (36.2, 37.4)),
    MODERATE: ((18, 23), (93, 96), (86, 108), (102, 136), (36.8, 38.2)),
    HIGH: ((21, 28), (90, 94), (98, 124), (92, 112), (37.4, 39.2)),
}
_CODES = ("resp_rate", "spo2", "pulse", "systolic_bp", "temperature")
# Which observations each source usually gives: an ambulance crew, the ED, a ward and the UCR
# team a full set; a GP most of one; 111 and a carer on the phone a few, or none.
_GIVES: dict[ReferralSource, tuple[tuple[str, ...], ...]] = {
    ReferralSource.AMBULANCE: (_CODES,),
    ReferralSource.ED: (_CODES,),
    ReferralSource.HOSPITAL_WARD: (_CODES,),
    ReferralSource.URGENT_COMMUNITY_RESPONSE: (_CODES,),
    ReferralSource.GP: (("resp_rate", "spo2", "pulse", "temperature"), _CODES,
                        ("spo2", "pulse", "temperature")),
    ReferralSource.NHS_111: (("pulse", "temperature"), (), ("temperature",)),
    ReferralSource.SELF_CARER: ((), ("temperature",), ("spo2", "pulse")),
}
# Urgency by acuity for step-up referrals; a step-down is planned (never a 2-hour response).
_STEP_UP_URGENCY: dict[str, tuple[tuple[Urgency, float], ...]] = {
    LOW: ((Urgency.SAME_DAY, 0.5), (Urgency.NEXT_DAY, 0.35), (Urgency.ROUTINE, 0.15)),
    MODERATE: ((Urgency.TWO_HOUR, 0.35), (Urgency.SAME_DAY, 0.55), (Urgency.NEXT_DAY, 0.1)),
    HIGH: ((Urgency.TWO_HOUR, 0.8), (Urgency.SAME_DAY, 0.2)),
}
_STEP_DOWN_URGENCY = ((Urgency.SAME_DAY, 0.3), (Urgency.NEXT_DAY, 0.5), (Urgency.ROUTINE, 0.2))

_GIVEN = ("Agnes", "Arthur", "Beryl", "Cyril", "Doreen", "Derek", "Edith", "Frank", "Gladys",
          "Harold", "Irene", "Jean", "Kenneth", "Lilian", "Maureen", "Norman", "Olive",
          "Percy", "Rita", "Stanley", "Sheila", "Trevor", "Valerie", "Walter", "Winifred",
          "Amrit", "Bashir", "Mei", "Nnamdi", "Zofia")
_FAMILY = ("Ashworth", "Bradley", "Chowdhury", "Dixon", "Ellis", "Foster", "Gill", "Hartley",
           "Hussain", "Jenkins", "Kaur", "Lloyd", "Marsh", "Nolan", "Okafor", "Parry",
           "Riley", "Shaw", "Thornton", "Walker", "Wiśniewska", "Yates")
_PRACTICES = ("Mill Lane Surgery", "Riverside Medical Centre", "Park View Practice",
              "The Health Centre, High Street", "Oakwood Group Practice")
_WARDS = ("Ward 12 (respiratory)", "Ward 7 (care of the elderly)", "Ward 21 (cardiology)",
          "Ward 4 (orthopaedics)", "Acute medical unit")
_CARERS = ("daughter", "son", "husband", "wife", "neighbour", "paid carer")


@dataclass(frozen=True, slots=True)
class SimReferral:
    """One referral as the referrer gives it (the hub registers the patient if new)."""

    at: dt.datetime
    nhs_number: str
    given_name: str
    family_name: str
    date_of_birth: dt.date
    source: ReferralSource
    urgency: Urgency
    reason: str
    referrer: str
    acuity: str
    observations: Mapping[str, float] = field(default_factory=lambda: MappingProxyType({}))

    @property
    def pathway(self) -> Pathway:
        return pathway_for(self.source)


def _numbers() -> Iterator[str]:
    """Valid NHS numbers of this generator's block, in order (wrapping round the block)."""
    base = _TEST_RANGE_START + (zlib.crc32(NAME.encode()) % _BLOCKS) * _BLOCK
    offset = 0
    while True:
        number = with_check_digit(f"{base + offset:09d}")
        if number is not None:
            yield number
        offset = (offset + 1) % _BLOCK


def _pick(rng: random.Random, weighted: tuple[tuple[T, float], ...]) -> T:
    return rng.choices([k for k, _ in weighted], [w for _, w in weighted])[0]


def _observations(rng: random.Random, source: ReferralSource, reason: Reason,
                  acuity: str) -> dict[str, float]:
    given = rng.choice(_GIVES[source])
    out: dict[str, float] = {}
    for code, (low, high) in zip(_CODES, _RANGES[acuity], strict=True):
        if code not in given:
            continue
        value = rng.uniform(low, high)
        if code == "spo2" and reason.copd:
            value -= rng.uniform(2, 5)  # lives at 88–92 %
        if code == "temperature" and not reason.infection:
            value = min(value, rng.uniform(36.3, 37.3))
        if code == "pulse" and reason.infection and acuity != LOW:
            value += rng.uniform(0, 8)
        out[code] = round(value, 1) if code == "temperature" else float(round(value))
    return out


def _referrer(rng: random.Random, source: ReferralSource) -> str:
    phone = f"07700 900{rng.randrange(1000):03d}"  # Ofcom's drama range: never a real line
    match source:
        case ReferralSource.GP:
            return f"Dr {rng.choice(_FAMILY)}, {rng.choice(_PRACTICES)}"
        case ReferralSource.AMBULANCE:
            return f"Paramedic crew, call sign {rng.choice('ABCDEFGH')}{rng.randrange(10, 99)}"
        case ReferralSource.NHS_111:
            return "NHS 111 clinical advisor"
        case ReferralSource.ED:
            return f"ED consultant, Dr {rng.choice(_FAMILY)}"
        case ReferralSource.URGENT_COMMUNITY_RESPONSE:
            return "Urgent community response team"
        case ReferralSource.HOSPITAL_WARD:
            return f"Discharge coordinator, {rng.choice(_WARDS)}"
        case _:
            return f"{rng.choice(_CARERS)}, {phone}"


def referral(rng: random.Random, at: dt.datetime, nhs_number: str) -> SimReferral:
    """One referral made at `at` (draws from `rng`)."""
    source = _pick(rng, SOURCES)
    step_down = pathway_for(source) is Pathway.STEP_DOWN
    reason = rng.choice(_STEP_DOWN_REASONS if step_down else _STEP_UP_REASONS)
    acuity = rng.choices((LOW, MODERATE, HIGH), reason.acuity)[0]
    urgency = _pick(rng, _STEP_DOWN_URGENCY if step_down else _STEP_UP_URGENCY[acuity])
    age_days = int(rng.triangular(65, 99, 82) * 365.25)
    return SimReferral(
        at=at, nhs_number=nhs_number, given_name=rng.choice(_GIVEN),
        family_name=rng.choice(_FAMILY), date_of_birth=at.date() - dt.timedelta(days=age_days),
        source=source, urgency=urgency, reason=reason.text, referrer=_referrer(rng, source),
        acuity=acuity,
        observations=MappingProxyType(_observations(rng, source, reason, acuity)))


def stream(seed: int, start: dt.datetime, per_hour: float) -> Iterator[SimReferral]:
    """Referrals from `start` on, `per_hour` an hour on average (Poisson), for ever."""
    if not per_hour > 0:
        msg = f"per_hour must be positive, got {per_hour!r}"
        raise ValueError(msg)
    if start.tzinfo is None or start.utcoffset() != dt.timedelta(0):
        msg = f"start must be timezone-aware UTC, got {start!r}"
        raise ValueError(msg)
    rng = random.Random(seed)
    numbers = _numbers()
    at = start
    while True:
        at += dt.timedelta(hours=rng.expovariate(per_hour))
        yield referral(rng, at, next(numbers))
