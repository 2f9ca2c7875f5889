-- The ward manager's flows (issue 13 items 1–3): what a referral says, who the patient is and
-- how to reach them, how the stay ended, and the follow-up call after discharge.

-- Referrals: a self/carer source (step-up), urgency, observations at referral, the caller.
ALTER TABLE admissions DROP CONSTRAINT admissions_source_check;
ALTER TABLE admissions ADD CONSTRAINT admissions_source_check CHECK (source IN (
    'gp', 'ambulance', '111', 'urgent_community_response', 'ed', 'hospital_ward',
    'self_carer'));
ALTER TABLE admissions
    -- two_hour: the urgent community response standard (seen within 2 hours).
    ADD COLUMN urgency text NOT NULL DEFAULT 'same_day'
        CHECK (urgency IN ('two_hour', 'same_day', 'next_day', 'routine')),
    -- {"resp_rate": 22, "spo2": 93, …}: vital code → value as the referrer gave it.
    ADD COLUMN referral_observations jsonb NOT NULL DEFAULT '{}'::jsonb
        CHECK (jsonb_typeof(referral_observations) = 'object'),
    ADD COLUMN referrer text,
    ADD COLUMN referred_by text,
    ADD COLUMN decided_by text,
    -- Time to decision, for the reports (manager-admin): accept or decline minus referral.
    ADD COLUMN time_to_decision interval GENERATED ALWAYS AS (decided_at - referred_at) STORED,
    ADD COLUMN discharge_note text,
    ADD COLUMN discharged_by text;
CREATE INDEX admissions_open_referrals ON admissions (referred_at) WHERE status = 'referred';

-- One row per decided referral: what a "referrals and time to decision" report reads.
CREATE VIEW referral_decisions AS
SELECT id AS admission_id, patient_id, source, pathway, urgency, referred_at, decided_at,
       CASE WHEN status = 'declined' THEN 'declined' ELSE 'accepted' END AS decision,
       decided_by, extract(epoch FROM time_to_decision) AS seconds_to_decision
FROM admissions WHERE decided_at IS NOT NULL;

-- Contact details taken at admission.
ALTER TABLE patients
    ADD COLUMN address text,
    ADD COLUMN phone text,
    ADD COLUMN next_of_kin text,
    ADD COLUMN gp_practice text;

-- The follow-up call after discharge (due the next day; the standard asks for it within 2).
-- Named apart from the general `tasks` table another branch adds; the lead reconciles them.
CREATE TABLE follow_up_calls (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id    bigint NOT NULL REFERENCES patients (id),
    admission_id  bigint NOT NULL UNIQUE REFERENCES admissions (id),
    due_at        timestamptz NOT NULL,
    status        text NOT NULL DEFAULT 'due' CHECK (status IN ('due', 'done', 'not_reached')),
    created_at    timestamptz NOT NULL,
    done_at       timestamptz,
    done_by       text,
    note          text,
    CHECK ((status = 'due') = (done_at IS NULL))
);
CREATE INDEX follow_up_calls_due ON follow_up_calls (due_at) WHERE status = 'due';
