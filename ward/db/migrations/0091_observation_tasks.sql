-- Scheduled hub tasks for NEWS2 parameters the patient's kit cannot measure (issue 11.3): a
-- phone call (RR counted by a carer, new confusion, air/oxygen) or a visit (BP, temperature,
-- SpO2, pulse without a device). Written by the alerting scheduler's sweep from
-- alerting.due (alerting/due_tasks.py); one open task per patient and parameter. Distinct
-- from the `tasks` table for "full set requested" (issue 10.4): the lead reconciles them.
CREATE TABLE observation_tasks (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id  bigint NOT NULL REFERENCES patients (id),
    parameter   text NOT NULL,          -- a NEWS2 parameter (alerting.news2.Parameter)
    method      text NOT NULL CHECK (method IN ('phone call', 'visit')),
    due_at      timestamptz NOT NULL,
    last_at     timestamptz,            -- the parameter's latest reading when scheduled
    created_at  timestamptz NOT NULL,
    done_at     timestamptz,
    outcome     text CHECK (outcome IN ('measured', 'not_needed', 'discharged')),
    CHECK ((done_at IS NULL) = (outcome IS NULL))
);
CREATE UNIQUE INDEX observation_tasks_one_open ON observation_tasks (patient_id, parameter)
    WHERE done_at IS NULL;
CREATE INDEX observation_tasks_due ON observation_tasks (due_at) WHERE done_at IS NULL;
