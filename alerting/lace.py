"""The LACE index for early death or unplanned readmission after discharge: the table as data.

Source: van Walraven C, Dhalla IA, Bell C, et al. *Derivation and validation of an index to
predict early death or unplanned readmission after discharge from hospital to the
community.* CMAJ 2010;182(6):551-557, Table 2 (the LACE points), as restated line by line in
Wang H et al., BMC Cardiovasc Disord 2014;14:97, Table 1 (which also lists the Charlson items
the index uses) and on MDCalc's "LACE Index for Readmission". Total 0-19.

    L  length of stay (days, admission and discharge days included):
         <1 -> 0, 1 -> 1, 2 -> 2, 3 -> 3, 4-6 -> 4, 7-13 -> 5, >=14 -> 7
    A  acute (emergent) admission: yes -> 3, no -> 0
    C  Charlson comorbidity index (sum of the item weights below):
         0 -> 0, 1 -> 1, 2 -> 2, 3 -> 3, >=4 -> 5
    E  emergency department visits in the 6 months before admission (not counting the visit
       that led to this admission): 0 -> 0, 1 -> 1, 2 -> 2, 3 -> 3, >=4 -> 4

A secondary "modified LACE" (BMJ Open) scores >=14 days as 6; we follow the original's 7,
which is what makes the published maximum 7 + 3 + 5 + 4 = 19.

Must never do I/O, read a clock, or log.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final

from ward.domain.risk_factors import Acuity, Comorbidity, RiskFactors

__all__ = ["Comorbidity", "LaceInputs", "LaceScore", "score"]


class LaceError(ValueError):
    """An input the LACE table cannot score (negative counts, unknown comorbidity)."""


CHARLSON_WEIGHTS: Final[Mapping[Comorbidity, int]] = MappingProxyType({
    Comorbidity.MYOCARDIAL_INFARCTION: 1,
    Comorbidity.CEREBROVASCULAR_DISEASE: 1,
    Comorbidity.PERIPHERAL_VASCULAR_DISEASE: 1,
    Comorbidity.DIABETES_UNCOMPLICATED: 1,
    Comorbidity.CONGESTIVE_HEART_FAILURE: 2,
    Comorbidity.DIABETES_END_ORGAN_DAMAGE: 2,
    Comorbidity.CHRONIC_PULMONARY_DISEASE: 2,
    Comorbidity.MILD_LIVER_OR_RENAL_DISEASE: 2,
    Comorbidity.ANY_TUMOUR: 2,
    Comorbidity.DEMENTIA: 3,
    Comorbidity.CONNECTIVE_TISSUE_DISEASE: 3,
    Comorbidity.MODERATE_SEVERE_LIVER_OR_RENAL_DISEASE: 4,
    Comorbidity.METASTATIC_SOLID_TUMOUR: 6,
})

# (lowest value, points): the row whose lowest value is the largest one <= the input wins.
LENGTH_OF_STAY_POINTS: Final[tuple[tuple[int, int], ...]] = (
    (0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (7, 5), (14, 7),
)
ACUITY_POINTS: Final[Mapping[bool, int]] = MappingProxyType({False: 0, True: 3})
CHARLSON_POINTS: Final[tuple[tuple[int, int], ...]] = ((0, 0), (1, 1), (2, 2), (3, 3), (4, 5))
ED_VISIT_POINTS: Final[tuple[tuple[int, int], ...]] = ((0, 0), (1, 1), (2, 2), (3, 3), (4, 4))
MAXIMUM: Final = 19


def points_from(table: tuple[tuple[int, int], ...], value: int) -> int:
    """Points of the row covering `value` in a (lowest value, points) step table."""
    if value < 0:
        raise LaceError(f"{value} is negative")
    return max((row for row in table if row[0] <= value), key=lambda row: row[0])[1]


def charlson_index(items: Iterable[Comorbidity]) -> int:
    """The Charlson index LACE uses: the sum of the weights of the (distinct) items present."""
    try:
        return sum(CHARLSON_WEIGHTS[Comorbidity(item)] for item in set(items))
    except ValueError as exc:
        raise LaceError(str(exc)) from exc


@dataclass(frozen=True)
class LaceInputs:
    length_of_stay_days: int
    emergent_admission: bool
    comorbidities: frozenset[Comorbidity]
    ed_visits_6_months: int


@dataclass(frozen=True)
class LaceScore:
    """The total and each component, so a screen can show where every point came from."""

    length_of_stay: int
    acuity: int
    comorbidity: int
    ed_visits: int
    charlson_index: int

    @property
    def total(self) -> int:
        return self.length_of_stay + self.acuity + self.comorbidity + self.ed_visits

    def components(self) -> tuple[tuple[str, int], ...]:
        return (("L", self.length_of_stay), ("A", self.acuity), ("C", self.comorbidity),
                ("E", self.ed_visits))


def score(inputs: LaceInputs) -> LaceScore:
    """LACE from the manager-entered record."""
    charlson = charlson_index(inputs.comorbidities)
    return LaceScore(
        length_of_stay=points_from(LENGTH_OF_STAY_POINTS, inputs.length_of_stay_days),
        acuity=ACUITY_POINTS[inputs.emergent_admission],
        comorbidity=points_from(CHARLSON_POINTS, charlson),
        ed_visits=points_from(ED_VISIT_POINTS, inputs.ed_visits_6_months),
        charlson_index=charlson,
    )


def from_factors(factors: RiskFactors) -> LaceScore | None:
    """LACE from the entered record; None until stay, acuity and ED visits are entered."""
    if (factors.index_stay_days is None or factors.acuity is None
            or factors.ed_visits_6_months is None):
        return None
    return score(LaceInputs(factors.index_stay_days, factors.acuity is Acuity.EMERGENT,
                            factors.comorbidities, factors.ed_visits_6_months))
