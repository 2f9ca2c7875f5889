-- Risk groups (issue 16). The facts a manager enters for the readmission scores (LACE,
-- HOSPITAL), the scores computed from them at referral and at discharge, and every change
-- of a patient's virtual-ward risk tier with its evidence (a low-severity, no-page finding;
-- the lead attaches it to the episode model after merging).
CREATE TABLE risk_factors (
    patient_id            bigint PRIMARY KEY REFERENCES patients (id),
    admissions_6_months   smallint CHECK (admissions_6_months BETWEEN 0 AND 1000),
    admissions_12_months  smallint CHECK (admissions_12_months BETWEEN 0 AND 1000),
    index_stay_days       smallint CHECK (index_stay_days BETWEEN 0 AND 1000),
    acuity                text CHECK (acuity IN ('emergent', 'elective')),
    comorbidities         text[] NOT NULL DEFAULT '{}',
    ed_visits_6_months    smallint CHECK (ed_visits_6_months BETWEEN 0 AND 1000),
    haemoglobin_g_dl      real CHECK (haemoglobin_g_dl BETWEEN 1 AND 30),
    sodium_mmol_l         real CHECK (sodium_mmol_l BETWEEN 90 AND 200),
    oncology              boolean,
    procedure_during_stay boolean,
    updated_at            timestamptz NOT NULL,
    updated_by            text NOT NULL,
    CHECK (admissions_6_months IS NULL OR admissions_12_months IS NULL
           OR admissions_6_months <= admissions_12_months)
);

CREATE TABLE readmission_scores (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id    bigint NOT NULL REFERENCES patients (id),
    admission_id  bigint REFERENCES admissions (id),
    stage         text NOT NULL CHECK (stage IN ('referral', 'discharge', 'update')),
    lace          smallint CHECK (lace BETWEEN 0 AND 19),
    hospital      smallint CHECK (hospital BETWEEN 0 AND 13),
    -- {"lace": {"L": 4, ...}, "hospital": {"H": 1, ...}, "missing": [...]}
    components    jsonb NOT NULL,
    computed_at   timestamptz NOT NULL
);
CREATE INDEX readmission_scores_patient ON readmission_scores (patient_id, computed_at DESC);

CREATE TABLE risk_tier_changes (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id   bigint NOT NULL REFERENCES patients (id),
    from_tier    text CHECK (from_tier IN ('low', 'rising', 'high')),
    to_tier      text NOT NULL CHECK (to_tier IN ('low', 'rising', 'high')),
    points       smallint NOT NULL,
    severity     text NOT NULL DEFAULT 'low' CHECK (severity = 'low'),
    paged        boolean NOT NULL DEFAULT false CHECK (NOT paged),
    -- Every factor's contribution: [{factor, label, value, points, max_points, detail}].
    evidence     jsonb NOT NULL,
    changed_at   timestamptz NOT NULL
);
CREATE INDEX risk_tier_changes_patient ON risk_tier_changes (patient_id, changed_at DESC);
