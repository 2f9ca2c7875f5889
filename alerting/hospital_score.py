"""The HOSPITAL score for 30-day potentially avoidable readmission: the table as data.

Source: Donzé J, Aujesky D, Williams D, Schnipper JL. *Potentially avoidable 30-day hospital
readmissions in medical patients: derivation and validation of a prediction model.* JAMA
Intern Med 2013;173(8):632-638, the score's point table, as restated in Clin Med (RCP) Table 1
and in Strack/"Healthcare Analytics Made Simple" (2018). Total 0-13.

    H   haemoglobin at discharge < 12 g/dL                   -> 1
    O   discharge from an oncology service                   -> 2
    S   sodium at discharge < 135 mmol/L                     -> 1
    P   procedure (ICD coded) during the hospital stay       -> 1
    IT  index admission type urgent (non-elective)           -> 1
    A   hospital admissions in the previous 12 months:
          0-1 -> 0, 2-5 -> 2, > 5 -> 5
    L   length of stay >= 5 days                             -> 2

Risk groups (Donzé 2013): low 0-4, intermediate 5-6, high >= 7. One secondary web page
scores "one to five" admissions as 2; we follow the derivation paper's 0-1 -> 0.

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Final

from ward.domain.risk_factors import Acuity, RiskFactors


class HospitalScoreError(ValueError):
    """An input the table cannot score."""


class HospitalRisk(enum.StrEnum):
    LOW = "low"
    INTERMEDIATE = "intermediate"
    HIGH = "high"


HAEMOGLOBIN_BELOW_G_DL: Final = 12.0
HAEMOGLOBIN_POINTS: Final = 1
ONCOLOGY_POINTS: Final = 2
SODIUM_BELOW_MMOL_L: Final = 135.0
SODIUM_POINTS: Final = 1
PROCEDURE_POINTS: Final = 1
URGENT_ADMISSION_POINTS: Final = 1
# (lowest count, points) for admissions in the previous 12 months.
ADMISSIONS_POINTS: Final[tuple[tuple[int, int], ...]] = ((0, 0), (2, 2), (6, 5))
LONG_STAY_DAYS: Final = 5
LONG_STAY_POINTS: Final = 2
INTERMEDIATE_FROM: Final = 5
HIGH_FROM: Final = 7
MAXIMUM: Final = 13


@dataclass(frozen=True)
class HospitalInputs:
    haemoglobin_g_dl: float | None  # None: not measured, scores 0 and is reported missing
    oncology_discharge: bool
    sodium_mmol_l: float | None
    procedure_during_stay: bool
    urgent_admission: bool
    admissions_12_months: int
    length_of_stay_days: int


@dataclass(frozen=True)
class HospitalScore:
    haemoglobin: int
    oncology: int
    sodium: int
    procedure: int
    index_type: int
    admissions: int
    length_of_stay: int
    missing: tuple[str, ...]  # laboratory values not given: the total is then a lower bound

    @property
    def total(self) -> int:
        return sum(points for _, points in self.components())

    @property
    def risk(self) -> HospitalRisk:
        return risk_of(self.total)

    def components(self) -> tuple[tuple[str, int], ...]:
        return (("H", self.haemoglobin), ("O", self.oncology), ("S", self.sodium),
                ("P", self.procedure), ("IT", self.index_type), ("A", self.admissions),
                ("L", self.length_of_stay))


def risk_of(total: int) -> HospitalRisk:
    if total >= HIGH_FROM:
        return HospitalRisk.HIGH
    return HospitalRisk.INTERMEDIATE if total >= INTERMEDIATE_FROM else HospitalRisk.LOW


def score(inputs: HospitalInputs) -> HospitalScore:
    if inputs.admissions_12_months < 0 or inputs.length_of_stay_days < 0:
        raise HospitalScoreError("counts and days cannot be negative")
    missing = tuple(name for name, value in (("haemoglobin", inputs.haemoglobin_g_dl),
                                             ("sodium", inputs.sodium_mmol_l)) if value is None)
    hb, na = inputs.haemoglobin_g_dl, inputs.sodium_mmol_l
    return HospitalScore(
        haemoglobin=HAEMOGLOBIN_POINTS if hb is not None and hb < HAEMOGLOBIN_BELOW_G_DL else 0,
        oncology=ONCOLOGY_POINTS if inputs.oncology_discharge else 0,
        sodium=SODIUM_POINTS if na is not None and na < SODIUM_BELOW_MMOL_L else 0,
        procedure=PROCEDURE_POINTS if inputs.procedure_during_stay else 0,
        index_type=URGENT_ADMISSION_POINTS if inputs.urgent_admission else 0,
        admissions=max(p for low, p in ADMISSIONS_POINTS if low <= inputs.admissions_12_months),
        length_of_stay=LONG_STAY_POINTS if inputs.length_of_stay_days >= LONG_STAY_DAYS else 0,
        missing=missing,
    )


def from_factors(factors: RiskFactors) -> HospitalScore | None:
    """HOSPITAL from the entered record; None until admissions, stay and acuity are entered.
    Labs, oncology and procedure not entered score 0 and are listed in `missing`."""
    if (factors.admissions_12_months is None or factors.index_stay_days is None
            or factors.acuity is None):
        return None
    result = score(HospitalInputs(
        haemoglobin_g_dl=factors.haemoglobin_g_dl, oncology_discharge=bool(factors.oncology),
        sodium_mmol_l=factors.sodium_mmol_l, procedure_during_stay=bool(factors.procedure),
        urgent_admission=factors.acuity is Acuity.EMERGENT,
        admissions_12_months=factors.admissions_12_months,
        length_of_stay_days=factors.index_stay_days))
    unknown = tuple(n for n, v in (("oncology", factors.oncology),
                                   ("procedure", factors.procedure)) if v is None)
    return replace(result, missing=result.missing + unknown)
