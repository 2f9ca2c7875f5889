-- Observations entered by hub staff (issue 12.6): who entered them, how they were taken (a phone
-- call or a visit) and the nurse's note, so the patient page can show them beside the values.
-- One row per entry; the readings themselves stay in `readings` (msg_id = this row's msg_id).
CREATE TABLE staff_entries (
    msg_id       text PRIMARY KEY,      -- staff:<username>:<entry>, as on the readings
    patient_id   bigint NOT NULL REFERENCES patients (id),
    entered_by   text NOT NULL,
    method       text CHECK (method IN ('phone', 'visit')),
    note         text,
    measured_at  timestamptz NOT NULL,
    entered_at   timestamptz NOT NULL,
    observations jsonb NOT NULL         -- [{"code", "value", "unit"}] as stored
);
CREATE INDEX staff_entries_patient ON staff_entries (patient_id, measured_at DESC);
