-- Latest values, rejected messages, scores, care plans, alerts, outbox.

-- The latest reading per patient and code, kept in the same transaction as the COPY so the
-- ward view never scans the readings table.
CREATE TABLE latest_readings (
    patient_id   bigint NOT NULL,
    code         text NOT NULL,
    measured_at  timestamptz NOT NULL,
    value        double precision NOT NULL,
    unit         text NOT NULL,
    device_id    text NOT NULL,
    PRIMARY KEY (patient_id, code)
);

-- Dead letters: everything a device sent that we could not accept, raw bytes and all.
CREATE TABLE rejected_messages (
    id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    received_at  timestamptz NOT NULL DEFAULT now(),
    topic        text NOT NULL,
    device_id    text,
    msg_id       text,
    reason       text NOT NULL,
    detail       text NOT NULL,
    payload      bytea NOT NULL
);
CREATE INDEX rejected_messages_received ON rejected_messages (received_at);
CREATE INDEX rejected_messages_device ON rejected_messages (device_id, received_at);

-- Who said what about a patient's care: Scale 2, thresholds, ceiling of care. One current row
-- per patient; every change is also written to audit_log.
CREATE TABLE care_plans (
    patient_id           bigint PRIMARY KEY REFERENCES patients (id),
    spo2_scale           smallint NOT NULL DEFAULT 1 CHECK (spo2_scale IN (1, 2)),
    spo2_scale_set_by    text,
    spo2_scale_set_at    timestamptz,
    spo2_scale_reason    text,
    spo2_target_low      double precision,
    spo2_target_high     double precision,
    thresholds           jsonb NOT NULL DEFAULT '{}'::jsonb,
    ceiling_of_care      text NOT NULL DEFAULT 'full_escalation'
                             CHECK (ceiling_of_care IN (
                                 'full_escalation', 'not_for_conveyance', 'palliative')),
    ceiling_set_by       text,
    ceiling_set_at       timestamptz,
    ceiling_reason       text,
    prescribed_infusion_rate_ml_h double precision,
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (spo2_scale = 1 OR (spo2_scale_set_by IS NOT NULL AND spo2_scale_set_at IS NOT NULL))
);

CREATE TABLE scores (
    patient_id     bigint NOT NULL,
    computed_at    timestamptz NOT NULL,
    total          smallint NOT NULL CHECK (total BETWEEN 0 AND 20),
    risk           text NOT NULL CHECK (risk IN ('low', 'low_medium', 'medium', 'high')),
    any_single_3   boolean NOT NULL,
    complete       boolean NOT NULL,
    spo2_scale     smallint NOT NULL,
    sub_scores     jsonb NOT NULL,
    missing        text[] NOT NULL DEFAULT '{}',
    -- The readings the score was computed from: [{device_id, code, measured_at, value}].
    evidence       jsonb NOT NULL DEFAULT '[]'::jsonb,
    PRIMARY KEY (patient_id, computed_at)
);

CREATE TABLE alerts (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    patient_id          bigint NOT NULL REFERENCES patients (id),
    kind                text NOT NULL,
    severity            text NOT NULL CHECK (severity IN ('info', 'low', 'low_medium', 'medium', 'high')),
    state               text NOT NULL CHECK (state IN ('raised', 'acknowledged', 'resolved')),
    summary             text NOT NULL,
    details             jsonb NOT NULL DEFAULT '{}'::jsonb,
    raised_at           timestamptz NOT NULL,
    updated_at          timestamptz NOT NULL,
    acknowledged_at     timestamptz,
    acknowledged_by     text,
    resolved_at         timestamptz,
    resolved_by         text,
    resolution_reason   text,
    snoozed_until       timestamptz,
    escalation_tier     smallint NOT NULL DEFAULT 0,
    next_escalation_at  timestamptz,
    clear_since         timestamptz
);
-- One open alert per patient and kind: new evidence updates it, never duplicates it.
CREATE UNIQUE INDEX alerts_one_open ON alerts (patient_id, kind) WHERE state <> 'resolved';
CREATE INDEX alerts_open_by_time ON alerts (state, raised_at DESC);
CREATE INDEX alerts_escalation_due ON alerts (next_escalation_at) WHERE state = 'raised';

CREATE TABLE alert_events (
    id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    alert_id   bigint NOT NULL REFERENCES alerts (id),
    at         timestamptz NOT NULL,
    event      text NOT NULL,
    actor      text NOT NULL,
    detail     jsonb NOT NULL DEFAULT '{}'::jsonb,
    -- The readings behind this transition: [{device_id, code, measured_at, value}].
    evidence   jsonb NOT NULL DEFAULT '[]'::jsonb
);
CREATE INDEX alert_events_alert ON alert_events (alert_id, at);

-- Notifications leave through this table: a crashed notifier retries instead of forgetting.
CREATE TABLE notification_outbox (
    id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    created_at       timestamptz NOT NULL DEFAULT now(),
    channel          text NOT NULL,
    recipient        text NOT NULL,
    payload          jsonb NOT NULL,
    idempotency_key  text NOT NULL UNIQUE,
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    failed_at        timestamptz,
    last_error       text
);
CREATE INDEX notification_outbox_due ON notification_outbox (next_attempt_at)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
