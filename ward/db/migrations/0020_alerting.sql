-- Alerting core: what the lifecycle, escalation, care plan and outbox need beyond 0003.

-- Hysteresis: an alert resolves itself only after `clear_count` consecutive clear
-- evaluations on *distinct* evidence (`clear_evidence_at` is the newest reading counted), or
-- after being clear for a kind-specific time since `clear_since`.
ALTER TABLE alerts
    ADD COLUMN clear_count        smallint NOT NULL DEFAULT 0,
    ADD COLUMN clear_evidence_at  timestamptz,
    -- The readings behind the alert's current state: [{device_id, code, measured_at, value}].
    ADD COLUMN evidence           jsonb NOT NULL DEFAULT '[]'::jsonb,
    -- Raised from a partial NEWS2 (some parameters missing or stale): total is a lower bound.
    ADD COLUMN partial            boolean NOT NULL DEFAULT false,
    -- Where the escalation currently points (tier name, e.g. on_call_clinician).
    ADD COLUMN escalation_target  text;
CREATE INDEX alerts_snooze_due ON alerts (snoozed_until) WHERE state <> 'resolved';
CREATE INDEX alerts_patient_open ON alerts (patient_id) WHERE state <> 'resolved';

-- The current infusion (IV antibiotics by elastomeric pump, typically): what was connected,
-- when, by whom, so the rules can tell "finished early/late" and "flow out of tolerance".
ALTER TABLE care_plans
    ADD COLUMN infusion_pump_type    text,
    ADD COLUMN infusion_volume_ml    double precision CHECK (infusion_volume_ml > 0),
    ADD COLUMN infusion_started_at   timestamptz,
    ADD COLUMN infusion_set_by       text,
    ADD COLUMN infusion_set_at       timestamptz,
    ADD COLUMN infusion_reason       text,
    ADD CONSTRAINT care_plans_spo2_targets CHECK (
        spo2_target_low IS NULL OR spo2_target_high IS NULL
        OR spo2_target_low <= spo2_target_high),
    ADD CONSTRAINT care_plans_infusion_rate CHECK (
        prescribed_infusion_rate_ml_h IS NULL OR prescribed_infusion_rate_ml_h > 0);

-- Which outbox rows belong to which alert (for the hub's "notifications" view).
ALTER TABLE notification_outbox ADD COLUMN alert_id bigint REFERENCES alerts (id);
CREATE INDEX notification_outbox_alert ON notification_outbox (alert_id);
CREATE INDEX notification_outbox_failed ON notification_outbox (failed_at)
    WHERE failed_at IS NOT NULL;

-- The scheduler's leader, for operators: the advisory lock decides, this row only reports.
CREATE TABLE alerting_leader (
    name          text PRIMARY KEY,
    holder        text NOT NULL,
    acquired_at   timestamptz NOT NULL,
    heartbeat_at  timestamptz NOT NULL,
    last_sweep    jsonb NOT NULL DEFAULT '{}'::jsonb
);
