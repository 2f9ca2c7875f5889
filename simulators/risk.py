"""Simulated risk factors: the readmission facts and the monitoring adherence of each patient.

What the risk tier is measured against (`benchmarks/bench_risk.py`) must come from somewhere
other than the tier. This module draws, per simulated patient and seeded by (seed, patient
index), the facts a manager would enter (`ward.domain.risk_factors.RiskFactors`) and whether
each scheduled spot check is actually done.

Assumptions, stated because the benchmark's figures depend on them:

* **Burden.** Patients on a deteriorating trajectory (sepsis, COPD exacerbation) carry more
  comorbidity and more prior hospital use than the others (Poisson means below), as
  readmission cohorts show; the overlap is wide, so a burden alone does not tell them apart.
* **Adherence.** Every patient misses some sets (a base rate drawn per patient). With
  `prodrome=True`, a deteriorating patient also misses more sets from a prodrome (6-30 h)
  before onset and through the course: feeling unwell, people stop doing their checks.
  The benchmark reports its figures with and without this prodrome.

Never uses global random state, never reads a clock, never does I/O; imports only
`ward.domain` and the simulator's own modules.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np

from simulators.ward import SimPatient, patient_rng
from ward.domain.patients import Pathway
from ward.domain.risk_factors import Acuity, Comorbidity, RiskFactors

_RISK_STREAM = 0x515C  # the generator stream for risk draws, apart from physiology and devices
_ADHERENCE_STREAM = 0xAD4E

# Poisson means: (others, deteriorating). Chosen so a typical virtual-ward patient has one or
# two Charlson items and about one admission in the year (older, multimorbid population).
_COMORBIDITY_MEAN = (1.0, 1.8)
_ADMISSIONS_12M_MEAN = (0.9, 1.8)
_ED_VISITS_6M_MEAN = (0.6, 1.2)
# Base share of scheduled sets missed, drawn uniformly per patient.
_BASE_MISS = (0.02, 0.15)
# Extra miss probability from the prodrome on (deteriorating patients, prodrome on).
_PRODROME_MISS = 0.3
_PRODROME_HOURS = (6.0, 30.0)
_COMORBIDITY_ITEMS = tuple(Comorbidity)
# Relative frequencies of the items in an older medical population (CHF, COPD, diabetes
# commonest; metastatic tumour and connective tissue disease rare).
_ITEM_WEIGHTS = np.array([8, 8, 5, 12, 12, 5, 14, 4, 6, 5, 2, 2, 2], dtype=float)


@dataclass(frozen=True, slots=True)
class SimRisk:
    factors: RiskFactors
    base_miss: float
    prodrome_from: dt.datetime | None  # when extra missed sets begin (None: never)


def draw(patient: SimPatient, seed: int, *, prodrome: bool = True) -> SimRisk:
    """One patient's risk facts and adherence (same seed and patient, same answer)."""
    rng = patient_rng(seed, patient.index, _RISK_STREAM)
    k = 1 if patient.trajectory.deteriorates else 0
    n_items = min(len(_COMORBIDITY_ITEMS), int(rng.poisson(_COMORBIDITY_MEAN[k])))
    chosen = rng.choice(len(_COMORBIDITY_ITEMS), size=n_items, replace=False,
                        p=_ITEM_WEIGHTS / _ITEM_WEIGHTS.sum())
    adm12 = int(rng.poisson(_ADMISSIONS_12M_MEAN[k]))
    step_down = patient.pathway is Pathway.STEP_DOWN
    # A step-down patient's index stay is the hospital stay just ended; a step-up patient's is
    # their last hospital stay, if any.
    stay = int(rng.integers(3, 15)) if step_down else int(rng.integers(0, 8))
    factors = RiskFactors(
        admissions_6_months=int(rng.binomial(adm12, 0.5)),
        admissions_12_months=adm12,
        index_stay_days=stay,
        acuity=Acuity.EMERGENT if rng.random() < 0.8 else Acuity.ELECTIVE,
        comorbidities=frozenset(_COMORBIDITY_ITEMS[int(i)] for i in chosen),
        ed_visits_6_months=int(rng.poisson(_ED_VISITS_6M_MEAN[k])),
        haemoglobin_g_dl=round(float(rng.normal(12.8 - 0.6 * k, 1.5)), 1),
        sodium_mmol_l=round(float(rng.normal(138.5 - 1.0 * k, 3.0)), 0),
        oncology=bool(rng.random() < 0.05 + 0.05 * k),
        procedure=bool(rng.random() < (0.4 if step_down else 0.1)),
    )
    base = float(rng.uniform(*_BASE_MISS))
    lead = dt.timedelta(hours=float(rng.uniform(*_PRODROME_HOURS)))
    onset = patient.profile.onset
    start = onset - lead if (prodrome and onset is not None) else None
    return SimRisk(factors=factors, base_miss=base, prodrome_from=start)


def miss_probability(risk: SimRisk, at: dt.datetime) -> float:
    extra = _PRODROME_MISS if risk.prodrome_from is not None and at >= risk.prodrome_from else 0
    return min(0.95, risk.base_miss + extra)


def set_done(risk: SimRisk, patient: SimPatient, seed: int, at: dt.datetime) -> bool:
    """Whether the spot check scheduled at `at` is done (a pure function of its inputs)."""
    rng = np.random.default_rng([seed, patient.index, _ADHERENCE_STREAM, int(at.timestamp())])
    return bool(rng.random() >= miss_probability(risk, at))
