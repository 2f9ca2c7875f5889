-- Alert episodes (alerting/episodes.py): one open alert per patient, holding its findings.
--
-- An `alerts` row is now a patient's episode; its kind, severity, summary and evidence are its
-- headline finding's. Every contributing finding (NEWS2 band, single 3, SpO2 below target,
-- trend, threshold, pump, device, overdue) is a row of `alert_findings`, active or cleared,
-- with the readings behind it. Findings are never deleted: a cleared one stays as the trace.

CREATE TABLE alert_findings (
    alert_id     bigint NOT NULL REFERENCES alerts (id),
    kind         text NOT NULL,
    severity     text NOT NULL
        CHECK (severity IN ('info', 'low', 'low_medium', 'medium', 'high')),
    summary      text NOT NULL,
    details      jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- The readings behind the finding's current severity: [{device_id, code, measured_at, value}].
    evidence     jsonb NOT NULL DEFAULT '[]'::jsonb,
    partial      boolean NOT NULL DEFAULT false,
    first_at     timestamptz NOT NULL,
    last_at      timestamptz NOT NULL,
    severity_at  timestamptz NOT NULL,
    -- Hysteresis in time: clear since this instant; cleared once clear for the kind's hold.
    clear_since  timestamptz,
    cleared_at   timestamptz,
    -- Silenced on the pager by a more severe clinical finding of the same episode.
    inhibited    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (alert_id, kind)
);

-- Existing open alerts become findings of one episode per patient: the most severe open alert
-- (oldest on ties) is the episode; the others are resolved into it.
WITH episode_of AS (
    SELECT a.id, first_value(a.id) OVER (
        PARTITION BY a.patient_id
        ORDER BY CASE a.severity WHEN 'high' THEN 5 WHEN 'medium' THEN 4
                 WHEN 'low_medium' THEN 3 WHEN 'low' THEN 2 ELSE 1 END DESC,
                 a.raised_at, a.id) AS episode_id
    FROM alerts a WHERE a.state <> 'resolved'
)
INSERT INTO alert_findings (alert_id, kind, severity, summary, details, evidence, partial,
                            first_at, last_at, severity_at, clear_since)
SELECT e.episode_id, a.kind, a.severity, a.summary, a.details, a.evidence, a.partial,
       a.raised_at, a.updated_at, a.updated_at, a.clear_since
FROM alerts a JOIN episode_of e ON e.id = a.id
ON CONFLICT DO NOTHING;

WITH episode_of AS (
    SELECT a.id, first_value(a.id) OVER (
        PARTITION BY a.patient_id
        ORDER BY CASE a.severity WHEN 'high' THEN 5 WHEN 'medium' THEN 4
                 WHEN 'low_medium' THEN 3 WHEN 'low' THEN 2 ELSE 1 END DESC,
                 a.raised_at, a.id) AS episode_id
    FROM alerts a WHERE a.state <> 'resolved'
)
UPDATE alerts a SET state = 'resolved', resolved_at = now(), resolved_by = 'system',
    resolution_reason = 'merged into episode ' || e.episode_id, next_escalation_at = NULL,
    updated_at = now()
FROM episode_of e WHERE e.id = a.id AND e.episode_id <> a.id;

DROP INDEX alerts_one_open;
CREATE UNIQUE INDEX alerts_one_open_episode ON alerts (patient_id) WHERE state <> 'resolved';

-- Each patient's own baseline, learned once from their first hours (alerting/trend.py).
CREATE TABLE patient_baselines (
    patient_id   bigint NOT NULL REFERENCES patients (id),
    code         text NOT NULL,
    mean         double precision NOT NULL,
    sd           double precision NOT NULL CHECK (sd >= 0),
    n            integer NOT NULL CHECK (n > 0),
    from_at      timestamptz NOT NULL,
    to_at        timestamptz NOT NULL,
    learned_at   timestamptz NOT NULL,
    PRIMARY KEY (patient_id, code)
);
