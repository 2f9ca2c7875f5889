"""LACE and HOSPITAL against their published point tables (van Walraven 2010; Donzé 2013)."""

from __future__ import annotations

import pytest

from alerting import hospital_score, lace
from alerting.hospital_score import HospitalInputs, HospitalRisk
from alerting.lace import Comorbidity, LaceInputs


@pytest.mark.parametrize(("days", "points"), [
    (0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (5, 4), (6, 4), (7, 5), (13, 5), (14, 7), (60, 7),
])
def test_lace_length_of_stay_row_by_row(days: int, points: int) -> None:
    assert lace.points_from(lace.LENGTH_OF_STAY_POINTS, days) == points


@pytest.mark.parametrize(("charlson", "points"), [(0, 0), (1, 1), (2, 2), (3, 3), (4, 5),
                                                  (9, 5)])
def test_lace_charlson_row_by_row(charlson: int, points: int) -> None:
    assert lace.points_from(lace.CHARLSON_POINTS, charlson) == points


@pytest.mark.parametrize(("visits", "points"), [(0, 0), (1, 1), (2, 2), (3, 3), (4, 4), (12, 4)])
def test_lace_ed_visits_row_by_row(visits: int, points: int) -> None:
    assert lace.points_from(lace.ED_VISIT_POINTS, visits) == points


def test_lace_charlson_weights_are_the_published_ones() -> None:
    assert lace.charlson_index([Comorbidity.MYOCARDIAL_INFARCTION]) == 1
    assert lace.charlson_index([Comorbidity.CONGESTIVE_HEART_FAILURE,
                                Comorbidity.CHRONIC_PULMONARY_DISEASE]) == 4
    assert lace.charlson_index([Comorbidity.DEMENTIA]) == 3
    assert lace.charlson_index([Comorbidity.MODERATE_SEVERE_LIVER_OR_RENAL_DISEASE]) == 4
    assert lace.charlson_index([Comorbidity.METASTATIC_SOLID_TUMOUR]) == 6
    with pytest.raises(lace.LaceError):
        lace.charlson_index(["gout"])  # type: ignore[list-item]


def test_lace_worked_example_heart_failure_with_copd() -> None:
    # 5-day emergent stay (4 + 3), CHF + COPD: Charlson 4 -> 5, two ED visits -> 2: total 14.
    s = lace.score(LaceInputs(5, True, frozenset({Comorbidity.CONGESTIVE_HEART_FAILURE,
                                                  Comorbidity.CHRONIC_PULMONARY_DISEASE}), 2))
    assert s.components() == (("L", 4), ("A", 3), ("C", 5), ("E", 2))
    assert s.total == 14
    assert s.charlson_index == 4


def test_lace_range_is_0_to_19() -> None:
    low = lace.score(LaceInputs(0, False, frozenset(), 0))
    high = lace.score(LaceInputs(30, True, frozenset(Comorbidity), 9))
    assert (low.total, high.total) == (0, lace.MAXIMUM) == (0, 19)


def test_lace_rejects_negative_counts() -> None:
    with pytest.raises(lace.LaceError):
        lace.score(LaceInputs(-1, False, frozenset(), 0))


def _hosp(**changes: object) -> HospitalInputs:
    base: dict[str, object] = {"haemoglobin_g_dl": 13.0, "oncology_discharge": False,
                                   "sodium_mmol_l": 140.0, "procedure_during_stay": False,
                                   "urgent_admission": False, "admissions_12_months": 0,
                                   "length_of_stay_days": 2}
    base.update(changes)
    return HospitalInputs(**base)  # type: ignore[arg-type]


@pytest.mark.parametrize(("changes", "component", "points"), [
    ({"haemoglobin_g_dl": 11.9}, "H", 1), ({"haemoglobin_g_dl": 12.0}, "H", 0),
    ({"oncology_discharge": True}, "O", 2),
    ({"sodium_mmol_l": 134.9}, "S", 1), ({"sodium_mmol_l": 135.0}, "S", 0),
    ({"procedure_during_stay": True}, "P", 1), ({"urgent_admission": True}, "IT", 1),
    ({"admissions_12_months": 1}, "A", 0), ({"admissions_12_months": 2}, "A", 2),
    ({"admissions_12_months": 5}, "A", 2), ({"admissions_12_months": 6}, "A", 5),
    ({"length_of_stay_days": 4}, "L", 0), ({"length_of_stay_days": 5}, "L", 2),
])
def test_hospital_table_row_by_row(changes: dict[str, object], component: str,
                                   points: int) -> None:
    s = hospital_score.score(_hosp(**changes))
    assert dict(s.components())[component] == points
    assert s.total == points


@pytest.mark.parametrize(("total", "risk"), [(0, HospitalRisk.LOW), (4, HospitalRisk.LOW),
                                             (5, HospitalRisk.INTERMEDIATE),
                                             (6, HospitalRisk.INTERMEDIATE),
                                             (7, HospitalRisk.HIGH), (13, HospitalRisk.HIGH)])
def test_hospital_risk_groups(total: int, risk: HospitalRisk) -> None:
    assert hospital_score.risk_of(total) is risk


def test_hospital_worked_examples() -> None:
    # Urgent admission, 6-day stay, Hb 11.2, two admissions last year: 1 + 2 + 1 + 2 = 6.
    s = hospital_score.score(_hosp(urgent_admission=True, length_of_stay_days=6,
                                   haemoglobin_g_dl=11.2, admissions_12_months=2))
    assert s.total == 6
    assert s.risk is HospitalRisk.INTERMEDIATE
    full = hospital_score.score(HospitalInputs(10.0, True, 130.0, True, True, 7, 9))
    assert full.total == hospital_score.MAXIMUM == 13
    assert full.risk is HospitalRisk.HIGH


def test_hospital_missing_labs_score_zero_and_are_reported() -> None:
    s = hospital_score.score(_hosp(haemoglobin_g_dl=None, sodium_mmol_l=None))
    assert s.total == 0
    assert s.missing == ("haemoglobin", "sodium")


def test_scores_from_the_entered_record() -> None:
    from ward.domain.risk_factors import Acuity, RiskFactors

    assert lace.from_factors(RiskFactors()) is None
    assert hospital_score.from_factors(RiskFactors()) is None
    f = RiskFactors(admissions_6_months=1, admissions_12_months=3, index_stay_days=8,
                    acuity=Acuity.EMERGENT,
                    comorbidities=frozenset({Comorbidity.DIABETES_UNCOMPLICATED}),
                    ed_visits_6_months=5, haemoglobin_g_dl=10.5, sodium_mmol_l=None,
                    oncology=None, procedure=True)
    la = lace.from_factors(f)
    assert la is not None
    assert la.components() == (("L", 5), ("A", 3), ("C", 1), ("E", 4))
    ho = hospital_score.from_factors(f)
    assert ho is not None
    assert dict(ho.components()) == {"H": 1, "O": 0, "S": 0, "P": 1, "IT": 1, "A": 2, "L": 2}
    assert ho.missing == ("sodium", "oncology")
