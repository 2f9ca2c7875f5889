-- The risk tier moves from the hub to the alerting runner (issue 16). Until now the hub
-- computed a tier whenever it showed one and wrote each change to `risk_tier_changes` as a
-- finding of its own. Now the runner computes it (per evaluated batch and on the timer sweep,
-- alerting/runner.py `assess_tiers`), stores it here, and records a change as a `risk_tier`
-- finding of the patient's alert episode (low severity, never paged; alerting/risk_findings.py).
-- The hub reads this table and never recomputes: one rule, one place.
CREATE TABLE risk_tiers (
    patient_id    bigint PRIMARY KEY REFERENCES patients (id),
    tier          text NOT NULL CHECK (tier IN ('low', 'rising', 'high')),
    points        smallint NOT NULL,
    -- The latest NEWS2 total the assessment saw: a different one makes the tier due again.
    news2_total   smallint,
    -- Every factor's contribution: [{factor, label, value, points, max_points, detail}].
    contributions jsonb NOT NULL,
    -- A row assessed before the patient's current admission is not their tier.
    assessed_at   timestamptz NOT NULL,
    since         timestamptz NOT NULL
);

-- The last tier the hub recorded for each admitted patient is where the runner starts, so the
-- upgrade itself opens no episodes (the runner re-assesses these at once: news2_total is null).
INSERT INTO risk_tiers (patient_id, tier, points, news2_total, contributions, assessed_at, since)
SELECT DISTINCT ON (c.patient_id) c.patient_id, c.to_tier, c.points, NULL, c.evidence,
       c.changed_at, c.changed_at
FROM risk_tier_changes c
JOIN admissions a ON a.patient_id = c.patient_id AND a.status = 'admitted'
     AND c.changed_at >= a.admitted_at
ORDER BY c.patient_id, c.changed_at DESC, c.id DESC;

-- `risk_tier_changes` stays as the tier's history, now written by the runner. Severity and
-- paging are the episode's now (the finding's severity, `page: false` on its events), so the
-- two constant columns go; each change names the episode it was recorded in (none: a fall with
-- no episode open, or the first assessment of an admission).
ALTER TABLE risk_tier_changes DROP COLUMN severity, DROP COLUMN paged,
    ADD COLUMN alert_id bigint REFERENCES alerts (id);
