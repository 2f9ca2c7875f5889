"""The readmission-risk facts a manager enters at referral and at discharge.

These are the inputs of the LACE index and the HOSPITAL score (`alerting.lace`,
`alerting.hospital_score`), kept in the domain so the database, the hub and the simulators
share one shape. The Charlson items are the ones LACE counts (van Walraven 2010).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from ward.domain.errors import DomainError


class Comorbidity(enum.StrEnum):
    """The Charlson items LACE counts; weights live with the score (`alerting.lace`)."""

    MYOCARDIAL_INFARCTION = "myocardial_infarction"
    CEREBROVASCULAR_DISEASE = "cerebrovascular_disease"
    PERIPHERAL_VASCULAR_DISEASE = "peripheral_vascular_disease"
    DIABETES_UNCOMPLICATED = "diabetes_uncomplicated"
    CONGESTIVE_HEART_FAILURE = "congestive_heart_failure"
    DIABETES_END_ORGAN_DAMAGE = "diabetes_end_organ_damage"
    CHRONIC_PULMONARY_DISEASE = "chronic_pulmonary_disease"
    MILD_LIVER_OR_RENAL_DISEASE = "mild_liver_or_renal_disease"
    ANY_TUMOUR = "any_tumour"  # including lymphoma or leukaemia
    DEMENTIA = "dementia"
    CONNECTIVE_TISSUE_DISEASE = "connective_tissue_disease"
    MODERATE_SEVERE_LIVER_OR_RENAL_DISEASE = "moderate_severe_liver_or_renal_disease"
    METASTATIC_SOLID_TUMOUR = "metastatic_solid_tumour"


class Acuity(enum.StrEnum):
    """How the index (hospital) admission began: LACE's A and HOSPITAL's IT."""

    EMERGENT = "emergent"  # urgent / via the emergency department
    ELECTIVE = "elective"


@dataclass(frozen=True)
class RiskFactors:
    """One patient's entered facts; None means "not entered" (never "normal")."""

    admissions_6_months: int | None = None
    admissions_12_months: int | None = None
    index_stay_days: int | None = None
    acuity: Acuity | None = None
    comorbidities: frozenset[Comorbidity] = frozenset()
    ed_visits_6_months: int | None = None
    haemoglobin_g_dl: float | None = None
    sodium_mmol_l: float | None = None
    oncology: bool | None = None
    procedure: bool | None = None

    def __post_init__(self) -> None:
        for name in ("admissions_6_months", "admissions_12_months", "index_stay_days",
                     "ed_visits_6_months"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 1000:
                raise DomainError(f"{name} must be between 0 and 1000, got {value}")
        if (self.admissions_6_months is not None and self.admissions_12_months is not None
                and self.admissions_6_months > self.admissions_12_months):
            raise DomainError("admissions in 6 months cannot exceed admissions in 12 months")
